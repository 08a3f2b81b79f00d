// The CSV parsing a hand-written loader does before its INSERTs (the baselines in
// bench/worker.ts): RFC 4180 quoting, doubled quotes, newlines inside quotes, LF line
// ends, and Postgres's CSV convention that an empty unquoted field is NULL and "" is ''.

export type CsvRecord = (string | null)[];

/** One record parsed from `text` at `start`, or undefined when the text ends before it does. */
function parseRecord(text: string, start: number): { record: CsvRecord; next: number } | undefined {
  const record: CsvRecord = [];
  let p = start;
  for (;;) {
    if (text[p] === '"') {
      let value = "";
      let from = p + 1;
      for (;;) {
        const close = text.indexOf('"', from);
        // The character after a quote says whether it closes the field or doubles a quote.
        if (close === -1 || close + 1 >= text.length) return undefined;
        if (text[close + 1] !== '"') {
          value += text.slice(from, close);
          p = close + 1;
          break;
        }
        value += text.slice(from, close + 1);
        from = close + 2;
      }
      record.push(value);
    } else {
      const newline = text.indexOf("\n", p);
      if (newline === -1) return undefined;
      const comma = text.indexOf(",", p);
      const end = comma !== -1 && comma < newline ? comma : newline;
      record.push(end === p ? null : text.slice(p, end));
      p = end;
    }
    if (p >= text.length) return undefined;
    if (text[p] === "\n") return { record, next: p + 1 };
    p++; // the comma
  }
}

/** Yields records (the header line included) from a stream of UTF-8 chunks. */
export async function* parseCsv(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<CsvRecord> {
  const decoder = new TextDecoder();
  let rest = "";
  const drain = function* (): Generator<CsvRecord> {
    let p = 0;
    for (let parsed = parseRecord(rest, p); parsed; parsed = parseRecord(rest, p)) {
      p = parsed.next;
      yield parsed.record;
    }
    rest = rest.slice(p);
  };
  for await (const chunk of chunks) {
    rest += decoder.decode(chunk, { stream: true });
    yield* drain();
  }
  rest += decoder.decode();
  if (rest !== "") {
    // A last line without its newline.
    rest += "\n";
    yield* drain();
  }
}
