/**
 * Who leads each partition, as far as one router knows: (topic, partition) → {leaderId,
 * endpoint, term}. An entry is replaced only by a term ≥ its own, so a late announcement from a
 * deposed leader cannot win; a NOT_LEADER hint names an endpoint and keeps the known term; an
 * unreachable leader is forgotten but its term kept.
 */

export interface LeaderEntry {
  /** null when learned from a hint (which names an endpoint only). */
  leaderId: string | null;
  /** null when the last known leader became unreachable (the term is kept). */
  endpoint: string | null;
  term: number;
}

export type LeaderSource = 'nats' | 'discover' | 'hint' | 'status' | 'answer';

export interface LeaderAnnouncement {
  leaderId: string;
  endpoint: string;
  term: number;
}

export class LeaderTable {
  private readonly entries = new Map<string, LeaderEntry>();

  private static key(topic: string, partition: number): string {
    return `${topic}/${partition}`;
  }

  get size(): number {
    return this.entries.size;
  }

  get(topic: string, partition: number): LeaderEntry | undefined {
    return this.entries.get(LeaderTable.key(topic, partition));
  }

  /** Accept a leader announced for a term ≥ the known one; returns whether the table changed. */
  update(topic: string, partition: number, a: LeaderAnnouncement): boolean {
    const k = LeaderTable.key(topic, partition);
    const cur = this.entries.get(k);
    if (cur !== undefined && a.term < cur.term) return false;
    if (cur !== undefined && cur.term === a.term && cur.leaderId === a.leaderId && cur.endpoint === a.endpoint)
      return false;
    this.entries.set(k, { leaderId: a.leaderId, endpoint: a.endpoint, term: a.term });
    return true;
  }

  /** A NOT_LEADER hint names an endpoint but no term: taken at the known term. */
  hint(topic: string, partition: number, endpoint: string): boolean {
    const k = LeaderTable.key(topic, partition);
    const cur = this.entries.get(k);
    if (cur?.endpoint === endpoint) return false;
    this.entries.set(k, { leaderId: null, endpoint, term: cur?.term ?? 0 });
    return true;
  }

  /** The leader at `endpoint` could not be reached: forget it, keep the term. */
  invalidate(topic: string, partition: number, endpoint: string): void {
    const cur = this.entries.get(LeaderTable.key(topic, partition));
    if (cur?.endpoint === endpoint) cur.endpoint = null;
  }

  /** Drop entries of partitions that are no longer in the catalog. */
  retain(keep: (topic: string, partition: number) => boolean): void {
    for (const k of [...this.entries.keys()]) {
      const i = k.lastIndexOf('/');
      if (!keep(k.slice(0, i), Number(k.slice(i + 1)))) this.entries.delete(k);
    }
  }
}
