/**
 * Safetensors reader for Hugging Face checkpoints.
 *
 * Only the header is read at open time; tensor bytes are read on demand from
 * their byte range with fs.readSync, so multi-GB shards are never loaded whole.
 * Every failure is a SafetensorsError whose message starts with the file path.
 */
import * as fs from 'node:fs';
import { decodeBf16 } from '../numerics/bf16.js';
import { decodeF16 } from '../numerics/f16.js';
import { decodeE4m3 } from '../numerics/e4m3.js';

export type SafeDType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'U32' | 'U64' | 'BOOL';

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<SafeDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, U32: 4, U64: 8, BOOL: 1,
};

/** True if `s` names a supported dtype. */
export function isSafeDType(s: unknown): s is SafeDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

export interface TensorInfo {
  name: string;
  dtype: SafeDType;
  shape: number[];
  numel: number;
  byteLength: number;
  /** Absolute byte offset of the tensor data in the file. */
  offset: number;
  file: string;
}

/** Typed array returned by SafetensorsFile.read for each dtype. */
export type TensorArray =
  | Float64Array | Float32Array | Uint16Array | Uint8Array | Int8Array | Int16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

/** An error about a safetensors file (or checkpoint); the message starts with the path. */
export class SafetensorsError extends Error {
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'SafetensorsError';
    this.file = file;
  }
}

/** The format's own limit on the JSON header size (same as the reference implementation). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Largest chunk handed to one fs.readSync / fs.writeSync call (they cap near 2 GiB). */
export const IO_CHUNK_BYTES = 1 << 30;

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  /** Length of the JSON header in bytes (N). */
  headerLength: number;
  /** Absolute offset where the data section starts (8 + N). */
  dataStart: number;
  metadata: Record<string, string>;
  /** Tensors ordered by position in the file. */
  tensors: Map<string, TensorInfo>;
}

/** Read exactly `length` bytes at `position` into `dst`, looping over short reads. */
export function readFully(fd: number, dst: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < dst.length) {
    const want = Math.min(dst.length - done, IO_CHUNK_BYTES);
    const n = fs.readSync(fd, dst, done, want, position + done);
    if (n === 0) {
      throw new SafetensorsError(file,
        `unexpected end of file at byte ${position + done} (wanted ${dst.length} bytes from ${position}); file truncated?`);
    }
    done += n;
  }
}

const describe = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : JSON.stringify(v) ?? typeof v;

/** Parse and validate the header of an already opened file descriptor. */
function parseHeader(fd: number, path: string): SafetensorsHeader {
  const fail = (problem: string): never => { throw new SafetensorsError(path, problem); };
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) fail(`file is too short to be safetensors (${fileSize} bytes, need at least 8)`);

  const prefix = new Uint8Array(8);
  readFully(fd, prefix, 0, path);
  const n = new DataView(prefix.buffer).getBigUint64(0, true);
  if (n === 0n) fail('header length is 0');
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} exceeds the format limit of ${MAX_HEADER_BYTES} bytes`);
  const headerLength = Number(n);
  if (8 + headerLength > fileSize) fail(`header length ${headerLength} exceeds the file size (${fileSize} bytes)`);

  const raw = new Uint8Array(headerLength);
  readFully(fd, raw, 8, path);
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    fail('header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    fail(`header is not a JSON object (got ${describe(json)})`);
  }

  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> = {};
  const entries: Array<TensorInfo & { begin: number; order: number }> = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(entry, fail);
      continue;
    }
    const t = `tensor '${name}'`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail(`${t}: entry is not an object`);
    const e = entry as Record<string, unknown>;
    const keys = Object.keys(e).sort().join(',');
    if (keys !== 'data_offsets,dtype,shape') {
      fail(`${t}: entry must have exactly the keys dtype, shape, data_offsets (got ${Object.keys(e).join(', ') || 'none'})`);
    }
    if (!isSafeDType(e.dtype)) fail(`${t}: unknown dtype ${describe(e.dtype)}`);
    const dtype = e.dtype as SafeDType;
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`${t}: bad shape ${JSON.stringify(shape)} (must be an array of non-negative integers)`);
    }
    const dims = shape as number[];
    const numel = dims.includes(0) ? 0 : dims.reduce((a, d) => a * d, 1);
    if (!Number.isSafeInteger(numel * DTYPE_BYTES[dtype])) fail(`${t}: shape ${JSON.stringify(dims)} is too large`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x) && x >= 0) || off[0] > off[1]) {
      fail(`${t}: bad data_offsets ${JSON.stringify(off)} (must be two non-negative integers [begin, end] with begin <= end)`);
    }
    const [begin, end] = off as [number, number];
    const byteLength = numel * DTYPE_BYTES[dtype];
    if (end - begin !== byteLength) {
      fail(`${t}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ${JSON.stringify(dims)} of ${dtype} needs ${byteLength} bytes (size mismatch)`);
    }
    if (end > dataSize) {
      fail(`${t}: data_offsets end ${end} is beyond the data section (${dataSize} bytes); file truncated?`);
    }
    entries.push({ name, dtype, shape: dims, numel, byteLength, offset: dataStart + begin, file: path, begin, order: entries.length });
  }

  entries.sort((a, b) => a.begin - b.begin || a.order - b.order);
  let prev: (typeof entries)[number] | undefined;
  for (const cur of entries) {
    if (cur.byteLength === 0) continue;
    if (prev && cur.begin < prev.begin + prev.byteLength) {
      fail(`tensors '${prev.name}' and '${cur.name}' overlap (byte ranges [${prev.begin}, ${prev.begin + prev.byteLength}) and [${cur.begin}, ${cur.begin + cur.byteLength}))`);
    }
    if (!prev || cur.begin + cur.byteLength > prev.begin + prev.byteLength) prev = cur;
  }

  const tensors = new Map<string, TensorInfo>();
  for (const { begin: _b, order: _o, ...info } of entries) tensors.set(info.name, info);
  return { path, fileSize, headerLength, dataStart, metadata, tensors };
}

function parseMetadata(v: unknown, fail: (p: string) => never): Record<string, string> {
  if (v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) fail(`__metadata__ is not a string-to-string map (got ${describe(v)})`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x !== 'string') fail(`__metadata__ is not a string-to-string map (key '${k}' is ${describe(x)})`);
    out[k] = x as string;
  }
  return out;
}

/** Read and validate only the header of a safetensors file. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openFd(path);
  try {
    return parseHeader(fd, path);
  } finally {
    fs.closeSync(fd);
  }
}

function openFd(path: string): number {
  try {
    return fs.openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SafetensorsError(path, code === 'ENOENT' ? 'file not found' : `cannot open (${(e as Error).message})`);
  }
}

/** Lookup table for F8_E5M2 (1 sign, 5 exponent, 2 mantissa bits, bias 15, IEEE inf/NaN). */
let e5m2Table: Float32Array | undefined;
function e5m2Lut(): Float32Array {
  if (e5m2Table) return e5m2Table;
  const lut = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const sign = b & 0x80 ? -1 : 1;
    const exp = (b >> 2) & 0x1f;
    const man = b & 0x3;
    if (exp === 0x1f) lut[b] = man === 0 ? sign * Infinity : NaN;
    else if (exp === 0) lut[b] = sign * man * 2 ** -16; // subnormal: (man/4) * 2^-14
    else lut[b] = sign * (1 + man / 4) * 2 ** (exp - 15);
  }
  return (e5m2Table = lut);
}

/** Decode F8_E5M2 bytes to float32. */
export function decodeE5m2(src: Uint8Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const lut = e5m2Lut();
  for (let i = 0; i < src.length; i++) dst[i] = lut[src[i]!]!;
  return dst;
}

/** An open safetensors file: validated header plus on-demand tensor reads. */
export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** Tensors in file order (by data offset). */
  readonly tensors: Map<string, TensorInfo>;
  readonly header: SafetensorsHeader;
  private fd: number | undefined;

  private constructor(fd: number, header: SafetensorsHeader) {
    this.fd = fd;
    this.header = header;
    this.path = header.path;
    this.metadata = header.metadata;
    this.tensors = header.tensors;
  }

  /** Open `path` and validate its header (tensor data is not read). */
  static open(path: string): SafetensorsFile {
    const fd = openFd(path);
    try {
      return new SafetensorsFile(fd, parseHeader(fd, path));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** Header entry of `name`; throws SafetensorsError naming the tensor when missing. */
  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.path, `no tensor named '${name}' in this file`);
    return t;
  }

  /** The raw bytes of `name`, in a fresh (hence aligned) buffer. */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    if (this.fd === undefined) throw new SafetensorsError(this.path, `cannot read tensor '${name}': file is closed`);
    const out = new Uint8Array(t.byteLength);
    readFully(this.fd, out, t.offset, this.path);
    return out;
  }

  /** The tensor as a typed array matching its dtype (F16/BF16 as raw Uint16 bits, F8 as raw bytes). */
  read(name: string): TensorArray {
    const t = this.info(name);
    const buf = this.readBytes(name).buffer;
    switch (t.dtype) {
      case 'F64': return new Float64Array(buf);
      case 'F32': return new Float32Array(buf);
      case 'F16': case 'BF16': case 'U16': return new Uint16Array(buf);
      case 'F8_E4M3': case 'F8_E5M2': case 'U8': case 'BOOL': return new Uint8Array(buf);
      case 'I8': return new Int8Array(buf);
      case 'I16': return new Int16Array(buf);
      case 'I32': return new Int32Array(buf);
      case 'U32': return new Uint32Array(buf);
      case 'I64': return new BigInt64Array(buf);
      case 'U64': return new BigUint64Array(buf);
    }
  }

  /** The tensor converted to float32 (floats decoded/rounded, integers converted, BOOL as 0/1). */
  readF32(name: string): Float32Array {
    const t = this.info(name);
    const a = this.read(name);
    switch (t.dtype) {
      case 'F32': return a as Float32Array;
      case 'BF16': return decodeBf16(a as Uint16Array);
      case 'F16': return decodeF16(a as Uint16Array);
      case 'F8_E4M3': return decodeE4m3(a as Uint8Array);
      case 'F8_E5M2': return decodeE5m2(a as Uint8Array);
      case 'BOOL': return Float32Array.from(a as Uint8Array, (v) => (v ? 1 : 0));
      case 'I64': case 'U64': return Float32Array.from(a as BigInt64Array, (v) => Number(v));
      default: return new Float32Array(a as Exclude<TensorArray, BigInt64Array | BigUint64Array>);
    }
  }

  /** An integer tensor as Int32Array; throws if a value does not fit or the dtype is not integer. */
  readInt32(name: string): Int32Array {
    const t = this.info(name);
    if (t.dtype.startsWith('F') || t.dtype === 'BF16') {
      throw new SafetensorsError(this.path, `cannot read tensor '${name}' as int32: dtype ${t.dtype} is not an integer dtype`);
    }
    const a = this.read(name);
    switch (t.dtype) {
      case 'I32': return a as Int32Array;
      case 'BOOL': return Int32Array.from(a as Uint8Array, (v) => (v ? 1 : 0));
      case 'U32': case 'I64': case 'U64': {
        const src = a as Uint32Array | BigInt64Array | BigUint64Array;
        const out = new Int32Array(src.length);
        for (let i = 0; i < src.length; i++) {
          const v = src[i]!;
          const n = typeof v === 'bigint' ? (v >= -0x80000000n && v <= 0x7fffffffn ? Number(v) : NaN) : v;
          if (!(n >= -0x80000000 && n <= 0x7fffffff)) {
            throw new SafetensorsError(this.path,
              `cannot read tensor '${name}' as int32: value ${v} at index ${i} does not fit in int32`);
          }
          out[i] = n;
        }
        return out;
      }
      default: return new Int32Array(a as Int8Array | Int16Array | Uint8Array | Uint16Array);
    }
  }

  /** Total bytes of tensor data described by the header. */
  totalBytes(): number {
    let s = 0;
    for (const t of this.tensors.values()) s += t.byteLength;
    return s;
  }

  get closed(): boolean {
    return this.fd === undefined;
  }

  /** Close the file descriptor; later reads throw. Idempotent. */
  close(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}
