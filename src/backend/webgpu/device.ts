/**
 * The WebGPU device layer: adapter and device with the features and limits the kernels use,
 * storage buffers, compiled-pipeline cache, dispatch and read-back. Browser code passes
 * `navigator.gpu`; in Node the `webgpu` package (Dawn) is loaded lazily, so nothing here needs a
 * Node-only API when a GPU object is given.
 */

/** Features used when the adapter offers them. */
const WANTED_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups' as GPUFeatureName, 'timestamp-query'];

export interface GpuOptions {
  /** A GPU object (navigator.gpu in browsers); default: Dawn's, from the `webgpu` package. */
  gpu?: GPU;
  /** Dawn flags for the Node package, e.g. 'enable-dawn-features=allow_unsafe_apis'. */
  dawnFlags?: string[];
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

export class GpuDevice {
  private readonly pipelines = new Map<string, GPUComputePipeline>();

  private constructor(
    readonly device: GPUDevice,
    readonly adapterInfo: GPUAdapterInfo,
    readonly features: ReadonlySet<string>,
  ) {}

  static async create(opts: GpuOptions = {}): Promise<GpuDevice> {
    const gpu = opts.gpu ?? (typeof navigator !== 'undefined' && navigator.gpu ? navigator.gpu : await nodeGpu(opts.dawnFlags ?? []));
    const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) throw new GpuError('WebGPU: no adapter (no GPU, or no Vulkan/Metal/D3D12 driver; on Linux CPUs Mesa ≥ 25 lavapipe provides one)');
    const features = WANTED_FEATURES.filter((f) => adapter.features.has(f));
    const l = adapter.limits;
    const device = await adapter.requestDevice({
      requiredFeatures: features,
      requiredLimits: {
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      },
    });
    return new GpuDevice(device, adapter.info, new Set(features));
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** A storage buffer of `bytes` (rounded up to 4), optionally filled with `data`. */
  buffer(bytes: number, data?: ArrayBufferView): GPUBuffer {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    if (size > this.limits.maxBufferSize) throw new GpuError(`WebGPU: a buffer of ${size} bytes exceeds the device's maxBufferSize ${this.limits.maxBufferSize}`);
    const b = this.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    if (data) this.write(b, data);
    return b;
  }

  /** Copies data into a buffer (padded to a multiple of 4 bytes as WebGPU requires). */
  write(b: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const whole = bytes.byteLength - (bytes.byteLength % 4);
    if (whole > 0) this.device.queue.writeBuffer(b, offset, bytes as Uint8Array<ArrayBuffer>, 0, whole);
    if (whole < bytes.byteLength) {
      const tail = new Uint8Array(4);
      tail.set(bytes.subarray(whole));
      this.device.queue.writeBuffer(b, offset + whole, tail);
    }
  }

  /** A small uniform buffer of u32/f32 parameters. */
  uniforms(values: ArrayBufferView): GPUBuffer {
    const size = Math.max(16, Math.ceil(values.byteLength / 16) * 16);
    const b = this.device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.write(b, values);
    return b;
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

  /** Dispatches one kernel: bindings in binding order (group 0), workgroup counts. */
  dispatch(code: string, bindings: readonly GPUBuffer[], workgroups: [number, number?, number?]): void {
    const pipeline = this.pipeline(code);
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (workgroups.some((w) => w !== undefined && w > max)) throw new GpuError(`WebGPU: ${workgroups.join(' × ')} workgroups exceed ${max} per dimension`);
    const bindGroup = this.device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: bindings.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
    pass.end();
    this.device.queue.submit([enc.finish()]);
  }

  /** Reads `bytes` of a buffer back to the host. */
  async read(b: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(b, 0, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    return out;
  }

  destroy(): void {
    this.device.destroy();
  }
}
