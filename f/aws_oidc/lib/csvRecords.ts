// Counts CSV records as bytes stream past, without parsing fields: COPY's own row count
// is not exposed by the postgres client's COPY streams. It only looks for the quote and
// newline bytes (native Buffer.indexOf), so quoted fields with embedded newlines count as
// one record and the cost stays far below COPY's.
import { Transform, type TransformCallback } from "node:stream";

const NEWLINE = 0x0a;

export class CsvRecordCounter extends Transform {
  records = 0;
  bytes = 0;
  private inQuotes = false;
  /** Whether bytes arrived since the last record ended (a last line without "\n"). */
  private pending = false;

  constructor(private readonly quote: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.scan(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.pending) this.records++;
    this.pending = false;
    callback();
  }

  private scan(chunk: Buffer): void {
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
