/**
 * Lease-based leader election (coordination.k8s.io/v1 Lease, as client-go's leaderelection): one
 * operator instance holds the Lease and reconciles; the others wait. The holder renews every
 * `retryPeriodMs`; when it has not managed to renew for `renewDeadlineMs` it stops leading (the
 * process exits: crash-only). A candidate takes the Lease over only when the holder has not
 * renewed it for `leaseDurationMs` *as measured on the candidate's own clock* (it remembers when it
 * last saw the Lease change), so clock skew between nodes cannot hand the Lease out early.
 * Every write carries the resourceVersion it read: two candidates never both win.
 */
import { sleep } from '../common/backoff';
import type { Logger } from '../common/log';
import { isConflict, isNotFound, RESOURCES, resourcePath, type KubeClient } from '../common/kube';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  logger: Logger;
  now?: () => number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** Lease times are MicroTime: RFC 3339 with microseconds. */
const microTime = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElector {
  private leading = false;
  private observed: { holder: string; resourceVersion: string; atMs: number } | null = null;
  private readonly now: () => number;
  private readonly path: string;

  constructor(
    private readonly kube: KubeClient,
    private readonly o: LeaderElectionOptions,
  ) {
    this.now = o.now ?? Date.now;
    this.path = resourcePath(RESOURCES.leases, { namespace: o.namespace, name: o.name });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Blocks until this instance holds the Lease (or the signal aborts: then false). */
  async acquire(signal: AbortSignal): Promise<boolean> {
    let lastHolder = '';
    while (!signal.aborted) {
      try {
        if (await this.tryAcquireOrRenew()) {
          this.leading = true;
          this.o.logger.info('leader_elected', { identity: this.o.identity, lease: this.o.name });
          return true;
        }
        const holder = this.observed?.holder ?? '';
        if (holder !== lastHolder) {
          this.o.logger.info('leader_is_other', { identity: this.o.identity, holder });
          lastHolder = holder;
        }
      } catch (err) {
        this.o.logger.warn('lease_acquire_failed', { identity: this.o.identity, error: (err as Error).message });
      }
      await sleep(this.o.retryPeriodMs * (0.8 + Math.random() * 0.4), signal);
    }
    return false;
  }

  /**
   * While leading: renew every retry period; resolves when leadership is lost (renewal failed for
   * renewDeadlineMs, or another holder took the Lease) or the signal aborts.
   */
  async holdUntilLost(signal: AbortSignal): Promise<'lost' | 'stopped'> {
    let lastRenewMs = this.now();
    while (!signal.aborted) {
      await sleep(this.o.retryPeriodMs, signal);
      if (signal.aborted) break;
      try {
        if (await this.tryAcquireOrRenew()) lastRenewMs = this.now();
        else {
          this.leading = false;
          this.o.logger.error('leader_lost', { identity: this.o.identity, holder: this.observed?.holder ?? '' });
          return 'lost';
        }
      } catch (err) {
        this.o.logger.warn('lease_renew_failed', { identity: this.o.identity, error: (err as Error).message });
      }
      if (this.now() - lastRenewMs > this.o.renewDeadlineMs) {
        this.leading = false;
        this.o.logger.error('leader_lost', { identity: this.o.identity, reason: 'renew deadline exceeded' });
        return 'lost';
      }
    }
    return 'stopped';
  }

  /** Gives the Lease up (graceful shutdown), so a standby takes over at once. */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.kube.get<Lease>(this.path);
      if (!lease || lease.spec.holderIdentity !== this.o.identity) return;
      await this.kube.replace(this.path, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime(this.now()) },
      });
      this.o.logger.info('leader_released', { identity: this.o.identity });
    } catch (err) {
      this.o.logger.warn('lease_release_failed', { identity: this.o.identity, error: (err as Error).message });
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const nowMs = this.now();
    const durationS = Math.max(1, Math.ceil(this.o.leaseDurationMs / 1000));
    const lease = await this.kube.get<Lease>(this.path);
    if (!lease) {
      try {
        const created = await this.kube.create<Lease>(resourcePath(RESOURCES.leases, { namespace: this.o.namespace }), {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.o.name, namespace: this.o.namespace },
          spec: {
            holderIdentity: this.o.identity,
            leaseDurationSeconds: durationS,
            acquireTime: microTime(nowMs),
            renewTime: microTime(nowMs),
            leaseTransitions: 0,
          },
        });
        this.observe(created, nowMs);
        return true;
      } catch (err) {
        if (isConflict(err) || (err as { statusCode?: number }).statusCode === 409) return false;
        throw err;
      }
    }
    const holder = lease.spec.holderIdentity ?? '';
    const rv = lease.metadata.resourceVersion ?? '';
    if (!this.observed || this.observed.resourceVersion !== rv) this.observe(lease, nowMs);
    const mine = holder === this.o.identity;
    const durationMs = (lease.spec.leaseDurationSeconds ?? durationS) * 1000;
    const expired = holder === '' || nowMs - this.observed!.atMs > durationMs;
    if (!mine && !expired) return false;
    const next: Lease = {
      ...lease,
      spec: {
        holderIdentity: this.o.identity,
        leaseDurationSeconds: durationS,
        acquireTime: mine ? lease.spec.acquireTime : microTime(nowMs),
        renewTime: microTime(nowMs),
        leaseTransitions: (lease.spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    try {
      // The resourceVersion in metadata makes this a compare-and-swap.
      const updated = await this.kube.replace<Lease>(this.path, next);
      this.observe(updated, nowMs);
      return true;
    } catch (err) {
      if (isConflict(err) || isNotFound(err)) return false;
      throw err;
    }
  }

  private observe(lease: Lease, nowMs: number): void {
    this.observed = {
      holder: lease.spec.holderIdentity ?? '',
      resourceVersion: lease.metadata.resourceVersion ?? '',
      atMs: nowMs,
    };
  }
}
