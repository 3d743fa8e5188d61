import type { TestContext } from 'node:test';
import { GpuDevice } from '../../src/backend/webgpu/device.js';

/** Whether this machine has a WebGPU adapter; without one the test is marked skipped (with the reason). */
export async function hasGpuAdapter(t: TestContext): Promise<boolean> {
  try {
    (await GpuDevice.create()).destroy();
    return true;
  } catch (e) {
    t.skip(`no WebGPU adapter: ${(e as Error).message}`);
    return false;
  }
}
