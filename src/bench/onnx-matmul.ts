/**
 * A one-node ONNX model, Y = X · W, written as protobuf bytes by hand (no onnx package needed), and
 * an onnxruntime-node session for it: the peer `dsa bench matmul` measures our linear against.
 *
 * Only the fields ORT needs are written: ModelProto { ir_version, opset_import, producer_name,
 * graph }, GraphProto { node, name, initializer, input, output }, TensorProto with raw_data
 * (float32 little-endian) and ValueInfoProto with a fixed tensor shape. Field numbers follow
 * onnx/onnx.proto.
 */

/** A protobuf message under construction: a list of byte chunks (large payloads are not copied until `bytes()`). */
export class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private pending: number[] = [];
  length = 0;

  private flush(): void {
    if (this.pending.length === 0) return;
    this.parts.push(Uint8Array.from(this.pending));
    this.pending = [];
  }

  private rawVarint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`protobuf varint: ${value} is not a non-negative safe integer`);
    let v = value;
    while (v >= 0x80) {
      this.pending.push((v % 0x80) | 0x80);
      this.length++;
      v = Math.floor(v / 0x80);
    }
    this.pending.push(v);
    this.length++;
  }

  private tag(field: number, wireType: number): void {
    this.rawVarint(field * 8 + wireType);
  }

  /** Wire type 0: int32 / int64 / enum (non-negative values only). */
  varint(field: number, value: number): this {
    this.tag(field, 0);
    this.rawVarint(value);
    return this;
  }

  /** Wire type 2: bytes (kept by reference). */
  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.rawVarint(data.length);
    this.flush();
    this.parts.push(data);
    this.length += data.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  /** Wire type 2: an embedded message. */
  message(field: number, m: ProtoWriter): this {
    this.tag(field, 2);
    this.rawVarint(m.length);
    this.flush();
    m.flush();
    this.parts.push(...m.parts);
    this.length += m.length;
    return this;
  }

  /** The encoded message in one buffer. */
  bytesOut(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

const FLOAT = 1; // TensorProto.DataType.FLOAT

/** ValueInfoProto of a float32 tensor with a fixed shape. */
function valueInfo(name: string, dims: readonly number[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) shape.message(1, new ProtoWriter().varint(1, d)); // dim { dim_value }
  const tensorType = new ProtoWriter().varint(1, FLOAT).message(2, shape); // elem_type, shape
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType)); // name, type { tensor_type }
}

/** The bytes of a float32 array, little-endian (the host order of every platform Node runs on here). */
function leBytes(a: Float32Array): Uint8Array {
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) throw new Error('onnx-matmul: big-endian hosts are not supported');
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * An ONNX model (opset 17, IR version 8) computing Y [M, N] = X [M, K] · W [K, N], with W (row-major
 * [K, N]) stored as an initializer.
 */
export function matmulModel(m: number, k: number, n: number, w: Float32Array): Uint8Array {
  if (w.length !== k * n) throw new RangeError(`matmulModel: W needs ${k}×${n} = ${k * n} values, got ${w.length}`);
  const node = new ProtoWriter().string(1, 'X').string(1, 'W').string(2, 'Y').string(3, 'matmul').string(4, 'MatMul');
  const init = new ProtoWriter().varint(1, k).varint(1, n).varint(2, FLOAT).string(8, 'W').bytes(9, leBytes(w));
  const graph = new ProtoWriter()
    .message(1, node)
    .string(2, 'dsa_bench_matmul')
    .message(5, init)
    .message(11, valueInfo('X', [m, k]))
    .message(12, valueInfo('Y', [m, n]));
  const opset = new ProtoWriter().string(1, '').varint(2, 17);
  return new ProtoWriter().varint(1, 8).message(8, opset).string(2, 'dsa').message(7, graph).bytesOut();
}

/** W [N, K] (our linear's layout: out × in) → [K, N] (MatMul's right operand). */
export function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const tile = 64;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = Math.min(r0 + tile, rows);
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const c1 = Math.min(c0 + tile, cols);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = w[r * cols + c];
    }
  }
  return out;
}

/** The parts of onnxruntime-node this benchmark uses. */
export interface OrtModule {
  InferenceSession: {
    create(model: Uint8Array, options?: Record<string, unknown>): Promise<OrtSession>;
  };
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => unknown;
  env: { versions?: Record<string, string> };
}
export interface OrtSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown }>>;
  release(): Promise<void>;
}

/** onnxruntime-node when it is installed and loads, else null with the reason. */
export async function loadOrt(): Promise<{ ort: OrtModule; version: string } | { ort: null; reason: string }> {
  try {
    const mod = (await import('onnxruntime-node')) as unknown as OrtModule & { default?: OrtModule };
    const ort = mod.InferenceSession ? mod : mod.default!;
    return { ort, version: ort.env.versions?.node ?? ort.env.versions?.common ?? 'unknown' };
  } catch (e) {
    return { ort: null, reason: (e as Error).message.split('\n')[0]! };
  }
}

/** A CPU session for Y = X · W (W given in our [N, K] layout) with `threads` intra-op threads. */
export class OrtMatmul {
  private constructor(
    private readonly ort: OrtModule,
    private readonly session: OrtSession,
    readonly m: number,
    readonly k: number,
    readonly n: number,
  ) {}

  static async create(ort: OrtModule, m: number, k: number, n: number, wNK: Float32Array, threads: number): Promise<OrtMatmul> {
    const model = matmulModel(m, k, n, transpose(wNK, n, k));
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    return new OrtMatmul(ort, session, m, k, n);
  }

  async run(x: Float32Array): Promise<Float32Array> {
    const out = await this.session.run({ X: new this.ort.Tensor('float32', x, [this.m, this.k]) });
    return out.Y!.data as Float32Array;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
