// Counts CSV records as bytes stream past, without parsing fields: COPY's own row count
// is not exposed by the postgres client's COPY streams. It only looks for the quote and
// newline bytes (native Buffer.indexOf), so quoted fields with embedded newlines count as
// one record and the cost stays far below COPY's.
import { Transform, type TransformCallback } from "node:stream";

const NEWLINE = 0x0a;

/** The counting itself, for callers that see the bytes without a stream stage of their own. */
export class CsvRecordScanner {
  records = 0;
  private inQuotes = false;
  /** Whether bytes arrived since the last record ended (a last line without "\n"). */
  private pending = false;

  constructor(private readonly quote: number) {}

  /** Call once after the last chunk: a last record without a newline counts too. */
  finish(): void {
    if (this.pending) this.records++;
    this.pending = false;
  }

  scan(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.inQuotes) {
        const close = chunk.indexOf(this.quote, pos);
        if (close === -1) return void (this.pending = true);
        this.inQuotes = false;
        pos = close + 1;
        continue;
      }
      const newline = chunk.indexOf(NEWLINE, pos);
      const open = chunk.indexOf(this.quote, pos);
      if (open !== -1 && (newline === -1 || open < newline)) {
        this.inQuotes = true;
        this.pending = true;
        pos = open + 1;
      } else if (newline !== -1) {
        this.records++;
        this.pending = false;
        pos = newline + 1;
      } else {
        this.pending = true;
        return;
      }
    }
  }
}

/**
 * Where to cut a CSV into slices of about `every` bytes without splitting a record: the
 * first record boundary at or after each multiple, quote-aware (a newline inside a quoted
 * field is not a boundary). Boundaries are offsets of a record's first byte.
 */
export class CsvSplitPoints {
  readonly points: number[] = [];
  private base = 0;
  private inQuotes = false;
  private next: number;

  constructor(private readonly quote: number, private readonly every: number) {
    this.next = every;
  }

  scan(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.inQuotes) {
        const close = chunk.indexOf(this.quote, pos);
        if (close === -1) break;
        this.inQuotes = false;
        pos = close + 1;
        continue;
      }
      const open = chunk.indexOf(this.quote, pos);
      // A boundary at or after `next` follows a newline at or after next - 1.
      const from = Math.max(pos, this.next - 1 - this.base);
      if (from < chunk.length && (open === -1 || from <= open)) {
        const newline = chunk.indexOf(NEWLINE, from);
        if (newline !== -1 && (open === -1 || newline < open)) {
          const point = this.base + newline + 1;
          this.points.push(point);
          this.next = point + this.every;
          pos = newline + 1;
          continue;
        }
      }
      if (open === -1) break;
      this.inQuotes = true;
      pos = open + 1;
    }
    this.base += chunk.length;
  }
}

/** A pass-through stream stage that counts the records flowing through it. */
export class CsvRecordCounter extends Transform {
  private readonly scanner: CsvRecordScanner;

  constructor(quote: number) {
    super();
    this.scanner = new CsvRecordScanner(quote);
  }

  get records(): number {
    return this.scanner.records;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.scanner.scan(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.scanner.finish();
    callback();
  }
}
