/**
 * Safetensors writer: u64 LE header length, JSON header padded with spaces to a
 * multiple of 8 bytes, then tensor data contiguously in insertion order.
 * Writes piecewise through a file descriptor to `path + '.tmp'`, then renames.
 */
import * as fs from 'node:fs';
import { DTYPE_BYTES, IO_CHUNK_BYTES, SafetensorsError, isSafeDType, type SafeDType } from './safetensors.js';

export interface TensorToWrite {
  dtype: SafeDType;
  shape: number[];
  data: ArrayBufferView;
}

/** Write all of `bytes` to `fd` at `position`, in chunks, looping over short writes. */
function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, IO_CHUNK_BYTES), position + done);
  }
}

export interface TensorSpec {
  dtype: SafeDType;
  shape: number[];
}

/** Build the header bytes (including the 8-byte length prefix) and each tensor's byte range. */
function buildHeader(
  path: string,
  entries: Array<[string, TensorSpec]>,
  metadata: Record<string, string> | undefined,
): { bytes: Uint8Array; ranges: Map<string, { spec: TensorSpec; begin: number; byteLength: number }> } {
  const fail = (problem: string): never => { throw new SafetensorsError(path, problem); };
  // Built by hand so keys keep insertion order (JSON.stringify would move integer-like keys first).
  const parts: string[] = [];
  if (metadata !== undefined) {
    const meta = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== 'string') fail(`metadata value for '${k}' is not a string`);
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`"__metadata__":{${meta.join(',')}}`);
  }
  const ranges = new Map<string, { spec: TensorSpec; begin: number; byteLength: number }>();
  let offset = 0;
  for (const [name, t] of entries) {
    const what = `tensor '${name}'`;
    if (name === '__metadata__') fail(`${what}: name is reserved`);
    if (ranges.has(name)) fail(`${what}: listed twice`);
    if (!isSafeDType(t.dtype)) fail(`${what}: unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`${what}: bad shape ${JSON.stringify(t.shape)} (must be an array of non-negative integers)`);
    }
    const numel = t.shape.reduce((a, d) => a * d, 1);
    const need = numel * DTYPE_BYTES[t.dtype];
    const info = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + need] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    ranges.set(name, { spec: t, begin: offset, byteLength: need });
    offset += need;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return { bytes: out, ranges };
}

/**
 * A safetensors file whose tensors (shapes known up front) are written piece by piece, in any
 * order, so that large outputs never have to be held in memory whole. Written to `path + '.tmp'`
 * and renamed on close(); abort() removes it.
 */
export class SafetensorsStreamWriter {
  private fd: number | null;
  private readonly dataStart: number;
  private readonly ranges: Map<string, { spec: TensorSpec; begin: number; byteLength: number }>;
  private readonly tmp: string;

  constructor(
    readonly path: string,
    tensors: Array<[string, TensorSpec]>,
    metadata?: Record<string, string>,
  ) {
    const header = buildHeader(path, tensors, metadata);
    this.ranges = header.ranges;
    this.dataStart = header.bytes.length;
    this.tmp = `${path}.tmp`;
    this.fd = fs.openSync(this.tmp, 'w');
    try {
      writeAll(this.fd, header.bytes, 0);
      const end = this.dataStart + [...this.ranges.values()].reduce((a, r) => a + r.byteLength, 0);
      fs.ftruncateSync(this.fd, end);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Writes `data` into tensor `name` starting at element `elementOffset`. */
  write(name: string, data: ArrayBufferView, elementOffset = 0): void {
    if (this.fd === null) throw new SafetensorsError(this.path, `cannot write tensor '${name}': the file is closed`);
    const r = this.ranges.get(name);
    if (!r) throw new SafetensorsError(this.path, `tensor '${name}' is not in this file`);
    const size = DTYPE_BYTES[r.spec.dtype];
    const start = elementOffset * size;
    if (!Number.isSafeInteger(elementOffset) || elementOffset < 0 || start + data.byteLength > r.byteLength || data.byteLength % size !== 0) {
      throw new SafetensorsError(
        this.path,
        `tensor '${name}': writing ${data.byteLength} bytes at element ${elementOffset} does not fit its ${r.byteLength} bytes of ${r.spec.dtype}`,
      );
    }
    writeAll(this.fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), this.dataStart + r.begin + start);
  }

  /** Writes the whole of tensor `name`; `data` must have exactly its size. */
  writeTensor(name: string, data: ArrayBufferView): void {
    const r = this.ranges.get(name);
    if (r && (!ArrayBuffer.isView(data) || data.byteLength !== r.byteLength)) {
      throw new SafetensorsError(
        this.path,
        `tensor '${name}': data has ${ArrayBuffer.isView(data) ? data.byteLength : 'no'} bytes but shape ${JSON.stringify(r.spec.shape)} of ${r.spec.dtype} needs ${r.byteLength} bytes`,
      );
    }
    this.write(name, data, 0);
  }

  /** Flushes and moves the file into place. */
  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(this.tmp, this.path);
  }

  /** Discards the partial file. */
  abort(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    fs.rmSync(this.tmp, { force: true });
  }
}

/**
 * Write `tensors` (in insertion order) to a safetensors file at `path`, atomically.
 * Throws SafetensorsError naming the tensor when its data size does not match its shape.
 */
export function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const w = new SafetensorsStreamWriter(path, entries, metadata);
  try {
    for (const [name, t] of entries) w.writeTensor(name, t.data);
    w.close();
  } catch (e) {
    w.abort();
    throw e;
  }
}
