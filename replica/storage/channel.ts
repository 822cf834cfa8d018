/**
 * Request/response channel to the storage worker. Each request gets an id and exactly one
 * answer. If the worker dies, every outstanding call rejects with ClassifiedError('worker_crash')
 * and so does every later call: with the disk state unknown, crash-only is the only safe answer.
 */
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { ClassifiedError } from '../../common/crash-policy';
import { startWorker } from '../../common/worker';
import { unmarshalError } from './errors';
import type { Request, Response } from './protocol';

/** A request before the channel numbers it. */
export type RequestBody = Request extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

interface Outstanding {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** The storage worker isolate's young generation (semi-spaces), MB. */
const STORAGE_WORKER_YOUNG_GENERATION_MB = 3;

export class WorkerChannel {
  private nextId = 1;
  private readonly outstanding = new Map<number, Outstanding>();
  private deadError: Error | null = null;
  private stopping = false;

  private constructor(
    private readonly worker: Worker,
    private readonly onDeath: (err: ClassifiedError) => void,
  ) {
    worker.on('message', (res: Response) => this.settle(res));
    worker.on('error', (err) => this.die(`uncaught error: ${err instanceof Error ? err.message : String(err)}`));
    worker.on('messageerror', (err) => this.die(`undecodable message: ${err.message}`));
    worker.on('exit', (code) => {
      if (!this.stopping) this.die(`exited with code ${code}`);
    });
    // Idle, the worker must not keep the process alive; while a call is outstanding it must.
    worker.unref();
  }

  static start(onDeath: (err: ClassifiedError) => void): WorkerChannel {
    const worker = startWorker(path.join(__dirname, 'worker'), {
      name: 'daftka-storage',
      // The worker's garbage is short-lived (one request's rows and copies; the payloads are
      // ArrayBuffers outside the heap): a small young generation is enough, and the default one
      // is most of its committed heap (issue 20). 3 MB against 6: the worker's heap 9–11 MB
      // instead of 14–15 while producing, its CPU per record within the noise.
      resourceLimits: { maxYoungGenerationSizeMb: STORAGE_WORKER_YOUNG_GENERATION_MB },
    });
    return new WorkerChannel(worker, onDeath);
  }

  get dead(): Error | null {
    return this.deadError;
  }

  call<T>(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.deadError) return Promise.reject(this.deadError);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (this.outstanding.size === 0) this.worker.ref();
      this.outstanding.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...body, id } as Request, transfer);
    });
  }

  private settle(res: Response): void {
    const o = this.outstanding.get(res.id);
    if (!o) return;
    this.outstanding.delete(res.id);
    if (this.outstanding.size === 0) this.worker.unref();
    if (res.ok) o.resolve(res.result);
    else o.reject(unmarshalError(res.error));
  }

  private die(reason: string): void {
    if (this.deadError) return;
    const err = new ClassifiedError('worker_crash', `storage worker died: ${reason}`);
    this.deadError = err;
    const pending = [...this.outstanding.values()];
    this.outstanding.clear();
    for (const o of pending) o.reject(err);
    this.onDeath(err);
  }

  /** Stop the worker on purpose (after `close`, or when open failed). */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.worker.terminate();
    if (!this.deadError) this.deadError = new ClassifiedError('worker_crash', 'storage worker stopped');
  }
}
