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

/** Write all of `bytes` to `fd`, in chunks, looping over short writes. */
function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, IO_CHUNK_BYTES));
  }
}

/** Build the header bytes (including the 8-byte length prefix) and validate every tensor. */
function buildHeader(
  path: string,
  entries: Array<[string, TensorToWrite]>,
  metadata: Record<string, string> | undefined,
): Uint8Array {
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
  let offset = 0;
  for (const [name, t] of entries) {
    const what = `tensor '${name}'`;
    if (name === '__metadata__') fail(`${what}: name is reserved`);
    if (!isSafeDType(t.dtype)) fail(`${what}: unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`${what}: bad shape ${JSON.stringify(t.shape)} (must be an array of non-negative integers)`);
    }
    const numel = t.shape.reduce((a, d) => a * d, 1);
    const need = numel * DTYPE_BYTES[t.dtype];
    if (!ArrayBuffer.isView(t.data) || t.data.byteLength !== need) {
      fail(`${what}: data has ${ArrayBuffer.isView(t.data) ? t.data.byteLength : 'no'} bytes but shape ${JSON.stringify(t.shape)} of ${t.dtype} needs ${need} bytes`);
    }
    const info = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + need] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
    offset += need;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
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
  const header = buildHeader(path, entries, metadata);
  const tmp = `${path}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    writeAll(fd, header);
    for (const [, t] of entries) {
      writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, path);
}
