/**
 * The WebGPU device layer: adapter and device with the features and limits the kernels use,
 * storage buffers, compiled-pipeline cache, dispatch and read-back. Browser code passes
 * `navigator.gpu`; in Node the `webgpu` package (Dawn) is loaded lazily, so nothing here needs a
 * Node-only API when a GPU object is given.
 */

/** Features used when the adapter offers them. */
const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'] as GPUFeatureName[];

/**
 * Dawn flags the Node package is created with unless DSA_DAWN_FLAGS says otherwise (space-separated):
 * the subgroup-matrix feature (tensor cores) is behind allow_unsafe_apis, Dawn offers shader-f16 on
 * NVIDIA's Vulkan driver only with vulkan_enable_f16_on_nvidia, and exact timestamps need
 * timestamp_quantization off.
 */
export const DEFAULT_DAWN_FLAGS: readonly string[] = [
  // disable_robustness: no bounds clamping added to every buffer access (our kernels keep their own
  // accesses in bounds, and the host checks indices before they reach a kernel); on the H200 it
  // doubled the tensor-core GEMM rate (docs/benchmarks.md).
  'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness',
  // Dawn rounds timestamps to tens of microseconds unless told otherwise; kernel timings need them exact.
  'disable-dawn-features=timestamp_quantization',
];

/** Released storage buffers kept for reuse: bytes (each at most a quarter of it; larger ones are freed) and count. */
const POOL_BYTES = 256 * 1024 * 1024;
const POOL_BUFFERS = 256;

/** Dispatches recorded before the pending commands are submitted (the GPU starts on them meanwhile). */
const MAX_PENDING = 64;

/** Uniform parameters per arena (each slot aligned to minUniformBufferOffsetAlignment). */
const ARENA_SLOTS = 128;

/**
 * A kernel's small uniform parameters: kept on the host and placed, at dispatch, in the uniform
 * arena of the commands being recorded (one buffer and one write per submission instead of a
 * buffer per dispatch). It can be bound again after a submission: it is placed anew.
 */
export class UniformParams {
  /** Where it was last placed: the arena and the offset in it. */
  arena: UniformArena | null = null;
  offset = 0;
  constructor(readonly bytes: Uint8Array) {}
}

class UniformArena {
  readonly data: Uint8Array;
  used = 0;
  constructor(
    readonly buffer: GPUBuffer,
    readonly capacity: number,
  ) {
    this.data = new Uint8Array(capacity);
  }
}

/** A binding of a kernel: a storage buffer, uniform parameters, or null for one the kernel does not use. */
export type Binding = GPUBuffer | UniformParams | null;

/** A subgroup-matrix shape the adapter offers (WebGPU's experimental tensor-core feature). */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export interface GpuOptions {
  /** A GPU object (navigator.gpu in browsers); default: Dawn's, from the `webgpu` package. */
  gpu?: GPU;
  /** Dawn flags for the Node package (default DSA_DAWN_FLAGS split at spaces, else DEFAULT_DAWN_FLAGS). */
  dawnFlags?: string[];
  /** Leave out these features even when offered (e.g. to test the fallback kernels). */
  disable?: string[];
  powerPreference?: GPUPowerPreference;
}

export class GpuError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuError';
  }
}

/** Dawn's GPU object for Node, created once per process (Dawn keeps the process alive while it is reachable). */
let dawn: GPU | undefined;
async function nodeGpu(flags: string[]): Promise<GPU> {
  if (dawn) return dawn;
  let mod: { create(flags: string[]): GPU; globals: object };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch (e) {
    throw new GpuError(`WebGPU is not available: the 'webgpu' package could not be loaded (${(e as Error).message})`);
  }
  // The Dawn classes (GPUBufferUsage, GPUMapMode, ...) as globals, as in a browser.
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  dawn = mod.create(flags);
  return dawn;
}

/** GPU time of one dispatch, from timestamp queries. */
export interface KernelTime {
  label: string;
  ms: number;
}

/**
 * Kernel timings by timestamp queries: while a profiler is attached, every dispatch runs in its own
 * compute pass whose beginning and end are stamped; `collect()` resolves the stamps.
 */
class Profiler {
  private readonly capacity = 4096;
  private readonly querySet: GPUQuerySet;
  private readonly resolve: GPUBuffer;
  private labels: string[] = [];
  private readonly pending: Promise<KernelTime[]>[] = [];

  constructor(private readonly device: GPUDevice) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: this.capacity });
    this.resolve = device.createBuffer({ size: this.capacity * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  }

  get full(): boolean {
    return this.labels.length * 2 >= this.capacity;
  }

  /** The timestampWrites of the next dispatch's pass. */
  stamp(label: string): GPUComputePassTimestampWrites {
    const i = this.labels.length;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /**
   * Appends the resolve of this batch's stamps to `enc`; the returned function, called once `enc`
   * is submitted, starts reading them back.
   */
  finish(enc: GPUCommandEncoder): (() => void) | null {
    const n = this.labels.length;
    if (n === 0) return null;
    const staging = this.device.createBuffer({ size: n * 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    enc.resolveQuerySet(this.querySet, 0, 2 * n, this.resolve, 0);
    enc.copyBufferToBuffer(this.resolve, 0, staging, 0, n * 16);
    const labels = this.labels;
    this.labels = [];
    return () => {
      this.pending.push(
        staging.mapAsync(GPUMapMode.READ).then(() => {
          const t = new BigUint64Array(staging.getMappedRange().slice(0));
          staging.unmap();
          staging.destroy();
          return labels.map((label, i) => ({ label, ms: Number(t[2 * i + 1]! - t[2 * i]!) / 1e6 }));
        }),
      );
    };
  }

  async collect(): Promise<KernelTime[]> {
    const all = await Promise.all(this.pending.splice(0));
    return all.flat();
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolve.destroy();
  }
}

export class GpuDevice {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** Each pipeline's group-0 layout, asked of Dawn once (asking per dispatch cost host time). */
  private readonly layouts = new Map<GPUComputePipeline, GPUBindGroupLayout>();
  /** Commands recorded but not yet submitted, and the compute pass open in them. */
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pendingDispatches = 0;
  /** Buffers released while commands that use them were still unsubmitted. */
  private releaseAfterSubmit: GPUBuffer[] = [];
  private profiler: Profiler | null = null;
  private profilePerDispatch = true;
  private readonly scratches = new Map<string, GPUBuffer>();
  /** Storage buffers made by buffer() (only those are reused), and the released ones free for reuse, oldest first. */
  private readonly made = new WeakSet<GPUBuffer>();
  private readonly free: GPUBuffer[] = [];
  private freeBytes = 0;
  private readonly generatedCache = new Map<string, unknown>();
  /** The uniform parameters of the commands being recorded. */
  private arena: UniformArena | null = null;
  /** The label stamped on the next dispatches while profiling (the op being run). */
  label = 'kernel';

  private constructor(
    readonly device: GPUDevice,
    readonly adapterInfo: GPUAdapterInfo,
    readonly features: ReadonlySet<string>,
    readonly subgroupMatrixConfigs: readonly SubgroupMatrixConfig[],
  ) {}

  static async create(opts: GpuOptions = {}): Promise<GpuDevice> {
    const envFlags = typeof process !== 'undefined' ? process.env?.DSA_DAWN_FLAGS : undefined;
    const flags = opts.dawnFlags ?? (envFlags !== undefined ? envFlags.split(' ').filter(Boolean) : [...DEFAULT_DAWN_FLAGS]);
    const gpu = opts.gpu ?? (typeof navigator !== 'undefined' && navigator.gpu ? navigator.gpu : await nodeGpu(flags));
    const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) throw new GpuError('WebGPU: no adapter (no GPU, or no Vulkan/Metal/D3D12 driver; on Linux CPUs Mesa ≥ 25 lavapipe provides one)');
    const disabled = new Set(opts.disable ?? []);
    const features = WANTED_FEATURES.filter((f) => adapter.features.has(f) && !disabled.has(f));
    const l = adapter.limits;
    const device = await adapter.requestDevice({
      requiredFeatures: features,
      requiredLimits: {
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX, // top-k runs 1024 invocations per workgroup where allowed
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      },
    });
    const info = adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: SubgroupMatrixConfig[] };
    const configs = features.includes('chromium-experimental-subgroup-matrix' as GPUFeatureName)
      ? (info.subgroupMatrixConfigs ?? []).map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K }))
      : [];
    return new GpuDevice(device, adapter.info, new Set(features), configs);
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** The subgroup size when the device has subgroups of one fixed size (32 on NVIDIA), else null. */
  get subgroupSize(): number | null {
    if (!this.features.has('subgroups')) return null;
    const info = this.adapterInfo as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
    return info.subgroupMinSize !== undefined && info.subgroupMinSize === info.subgroupMaxSize ? info.subgroupMinSize : null;
  }

  /**
   * Workgroups for `count` items at `perGroup` items each (at least one), as [x, y] within the
   * per-dimension limit (the kernel folds them back with wg.x + wg.y · x).
   */
  grid(count: number, perGroup = 1): [number, number] {
    const groups = Math.max(1, Math.ceil(count / perGroup));
    const x = Math.min(groups, this.limits.maxComputeWorkgroupsPerDimension);
    return [x, Math.ceil(groups / x)];
  }

  /** A kernel source or plan generated once per device and key (`make` runs on the first ask). */
  generated<T>(key: string, make: () => T): T {
    if (!this.generatedCache.has(key)) this.generatedCache.set(key, make());
    return this.generatedCache.get(key) as T;
  }

  /** Whether the adapter offers a subgroup-matrix shape (tensor cores) of these types. */
  hasSubgroupMatrix(component: string, result: string, M: number, N: number, K: number): boolean {
    return this.subgroupMatrixConfigs.some((c) => c.componentType === component && c.resultComponentType === result && c.M === M && c.N === N && c.K === K);
  }

  /** A storage buffer of `bytes` (rounded up to 4), optionally filled with `data`. */
  buffer(bytes: number, data?: ArrayBufferView): GPUBuffer {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    if (size > this.limits.maxBufferSize) throw new GpuError(`WebGPU: a buffer of ${size} bytes exceeds the device's maxBufferSize ${this.limits.maxBufferSize}`);
    // Every buffer here is bound whole by some kernel: one past the binding limit would fail there
    // (a validation error and wrong results), so it is refused here, naming the limit.
    const maxBinding = this.limits.maxStorageBufferBindingSize;
    if (size > maxBinding) {
      throw new GpuError(
        `WebGPU: a tensor of ${size} bytes exceeds the device's largest storage binding (maxStorageBufferBindingSize ${maxBinding}); use fewer sequences or cache pages per call, or a smaller cache format (e.g. --cache fp8)`,
      );
    }
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    if (!data) {
      const reused = this.reuse(size);
      if (reused) return reused;
      const b = this.device.createBuffer({ size, usage });
      this.made.add(b);
      return b;
    }
    // Filled at creation (not through the queue), so it needs no ordering against recorded commands.
    const b = this.device.createBuffer({ size, usage, mappedAtCreation: true });
    new Uint8Array(b.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    b.unmap();
    this.made.add(b);
    return b;
  }

  /**
   * A released buffer of exactly `size` bytes, zeroed by a clear recorded here (in order with
   * the commands: a new buffer reads as zeros, and callers count on it), or null. Reuse spares the
   * allocation (host time, and fresh GPU memory mapped for every temporary of every step).
   */
  private reuse(size: number): GPUBuffer | null {
    const i = this.free.findIndex((b) => b.size === size);
    if (i < 0) return null;
    const [b] = this.free.splice(i, 1);
    this.freeBytes -= size;
    this.endPass();
    this.commands().clearBuffer(b!);
    return b!;
  }

  /** A released buffer (its users submitted): kept for reuse within POOL_BYTES and POOL_BUFFERS (oldest freed first), else destroyed. */
  private recycle(b: GPUBuffer): void {
    if (!this.made.has(b) || b.size > POOL_BYTES / 4 || this.free.includes(b)) {
      if (!this.free.includes(b)) b.destroy();
      return;
    }
    this.free.push(b);
    this.freeBytes += b.size;
    while (this.freeBytes > POOL_BYTES || this.free.length > POOL_BUFFERS) {
      const old = this.free.shift()!;
      this.freeBytes -= old.size;
      old.destroy();
    }
  }

  /**
   * A scratch buffer of at least `bytes` kept under `key` and reused by later calls (it grows when
   * asked for more): for a kernel's temporaries, so a step does not allocate (and Dawn zero) them
   * anew each time. Work recorded with it runs in order, so reuse is safe; its content is whatever
   * the last user left.
   */
  scratch(key: string, bytes: number): GPUBuffer {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const have = this.scratches.get(key);
    if (have && have.size >= size) return have;
    if (have) this.release(have);
    // Grown by doubling, but never past one storage binding (kernels bind a scratch buffer whole).
    const b = this.buffer(Math.max(size, have ? Math.min(2 * have.size, this.limits.maxBufferSize, this.limits.maxStorageBufferBindingSize) : 0));
    this.scratches.set(key, b);
    return b;
  }

  /** Copies data into an existing buffer, after every command recorded so far. */
  write(b: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    this.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const whole = bytes.byteLength - (bytes.byteLength % 4);
    if (whole > 0) this.device.queue.writeBuffer(b, offset, bytes as Uint8Array<ArrayBuffer>, 0, whole);
    if (whole < bytes.byteLength) {
      const tail = new Uint8Array(4);
      tail.set(bytes.subarray(whole));
      this.device.queue.writeBuffer(b, offset + whole, tail);
    }
  }

  /** A kernel's uniform parameters (u32/f32 values), bound by dispatch. */
  uniforms(values: ArrayBufferView): UniformParams {
    const size = Math.max(16, Math.ceil(values.byteLength / 16) * 16);
    const bytes = new Uint8Array(size);
    bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    return new UniformParams(bytes);
  }

  /** Places parameters in the current arena (a new arena, or a submission first, when needed). */
  private place(u: UniformParams): GPUBufferBinding {
    if (u.arena === null || u.arena !== this.arena) {
      const align = this.limits.minUniformBufferOffsetAlignment;
      const slot = Math.ceil(u.bytes.byteLength / align) * align;
      if (!this.arena) {
        const capacity = ARENA_SLOTS * Math.max(slot, align);
        this.arena = new UniformArena(this.device.createBuffer({ size: capacity, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }), capacity);
      }
      if (this.arena.used + slot > this.arena.capacity) throw new GpuError(`WebGPU: ${u.bytes.byteLength} bytes of uniforms do not fit the arena`);
      u.arena = this.arena;
      u.offset = this.arena.used;
      this.arena.data.set(u.bytes, u.offset);
      this.arena.used += slot;
    }
    return { buffer: u.arena.buffer, offset: u.offset, size: u.bytes.byteLength };
  }

  /** The compute pipeline of a WGSL source (compiled once per source). */
  pipeline(code: string): GPUComputePipeline {
    let p = this.pipelines.get(code);
    if (!p) {
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module: this.device.createShaderModule({ code }), entryPoint: 'main' } });
      this.pipelines.set(code, p);
    }
    return p;
  }

  private commands(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /**
   * Records one kernel: bindings in binding order (group 0), workgroup counts. Kernels run in the
   * order they are recorded (WebGPU orders the dispatches of a pass); the recorded commands are
   * submitted every MAX_PENDING dispatches and before any read or write.
   */
  dispatch(code: string, bindings: readonly Binding[], workgroups: [number, number?, number?]): void {
    const pipeline = this.pipeline(code);
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (workgroups.some((w) => w !== undefined && w > max)) throw new GpuError(`WebGPU: ${workgroups.join(' × ')} workgroups exceed ${max} per dimension`);
    // Room in the arena for this dispatch's uniforms first: a submission in the middle of building
    // the bind group would leave it pointing at an arena already handed over.
    const arena = this.arena;
    if (arena) {
      const align = this.limits.minUniformBufferOffsetAlignment;
      let need = 0;
      for (const b of bindings) if (b instanceof UniformParams && b.arena !== arena) need += Math.ceil(b.bytes.byteLength / align) * align;
      if (arena.used + need > arena.capacity) this.flush();
    }
    let layout = this.layouts.get(pipeline);
    if (!layout) {
      layout = pipeline.getBindGroupLayout(0);
      this.layouts.set(pipeline, layout);
    }
    const bindGroup = this.device.createBindGroup({
      layout,
      entries: bindings.flatMap((b, binding) => (b === null ? [] : [{ binding, resource: b instanceof UniformParams ? this.place(b) : { buffer: b } }])),
    });
    if (this.profiler) {
      if (this.profiler.full) this.flush();
      if (this.profilePerDispatch) this.endPass();
      this.pass ??= this.commands().beginComputePass({ timestampWrites: this.profiler.stamp(this.label) });
    } else {
      this.pass ??= this.commands().beginComputePass();
    }
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
    if (this.profiler && this.profilePerDispatch) this.endPass();
    if (++this.pendingDispatches >= MAX_PENDING) this.flush();
  }

  /** Records a buffer-to-buffer copy (in order with the dispatches). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (bytes === 0) return;
    this.endPass();
    this.commands().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Submits the recorded commands (their uniform parameters written first); then frees the buffers released meanwhile. */
  flush(): void {
    const arena = this.arena;
    if (arena) {
      this.device.queue.writeBuffer(arena.buffer, 0, arena.data as Uint8Array<ArrayBuffer>, 0, arena.used);
      this.arena = null;
      this.releaseAfterSubmit.push(arena.buffer);
    }
    if (this.encoder) {
      this.endPass();
      const read = this.profiler?.finish(this.encoder);
      this.device.queue.submit([this.encoder.finish()]);
      read?.();
      this.encoder = null;
      this.pendingDispatches = 0;
    }
    for (const b of this.releaseAfterSubmit.splice(0)) this.recycle(b);
  }

  /** Frees a buffer: now, or once the commands recorded so far (which may use it) are submitted. */
  release(b: GPUBuffer): void {
    if (this.encoder) this.releaseAfterSubmit.push(b);
    else this.recycle(b);
  }

  /** Reads `bytes` of a buffer back to the host (after every command recorded so far). */
  async read(b: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.copy(b, 0, staging, 0, size);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    return out;
  }

  /** Waits until the GPU has finished everything submitted so far (recorded commands are submitted first). */
  async finish(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  /** Starts timing every dispatch by timestamp queries (needs the 'timestamp-query' feature). */
  /**
   * Starts timing by timestamp queries (needs the 'timestamp-query' feature): each dispatch in a
   * pass of its own ('dispatch': per-kernel times, but no overlap between kernels), or each pass of
   * consecutive dispatches as recorded ('pass': the GPU's time for the work as it runs unprofiled,
   * labelled with the label of its first dispatch).
   */
  startProfiling(granularity: 'dispatch' | 'pass' = 'dispatch'): boolean {
    if (!this.features.has('timestamp-query')) return false;
    this.flush();
    this.profiler ??= new Profiler(this.device);
    this.profilePerDispatch = granularity === 'dispatch';
    return true;
  }

  /** Stops profiling; returns the GPU time of each dispatch (or pass) since startProfiling, in order. */
  async stopProfiling(): Promise<KernelTime[]> {
    const p = this.profiler;
    if (!p) return [];
    this.flush();
    this.profiler = null;
    const times = await p.collect();
    p.destroy();
    return times;
  }

  destroy(): void {
    this.flush();
    for (const b of this.free.splice(0)) b.destroy();
    this.profiler?.destroy();
    this.device.destroy();
  }
}
