// The first record of a CSV object, split into fields the way PostgreSQL's COPY (format csv)
// splits them: what the load flow's check compares with the table's columns before it loads.

/** A first record longer than this is not a header: the check is skipped rather than read on. */
const FIRST_RECORD_MAX_BYTES = 1024 * 1024;

/**
 * The fields of the first record of `source`: quote-aware (a quoted field may hold the
 * delimiter, newlines and doubled quotes). Undefined for an empty object or a first record
 * longer than FIRST_RECORD_MAX_BYTES. Stops reading as soon as the record ends.
 */
export async function readFirstRecord(source: AsyncIterable<Buffer>, delimiter: string, quote: string): Promise<string[] | undefined> {
  const decoder = new TextDecoder();
  let text = "";
  let bytes = 0;
  for await (const chunk of source) {
    bytes += chunk.length;
    text += decoder.decode(chunk, { stream: true });
    const end = recordEnd(text, quote);
    if (end >= 0) return splitFields(text.slice(0, end), delimiter, quote);
    if (bytes > FIRST_RECORD_MAX_BYTES) return undefined;
  }
  text += decoder.decode();
  return text ? splitFields(text, delimiter, quote) : undefined;
}

/** Where the first record's newline is (outside quotes), or -1 while it has not arrived. */
function recordEnd(text: string, quote: string): number {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === quote) quoted = !quoted;
    else if (text[i] === "\n" && !quoted) return i;
  }
  return -1;
}

/** One record's fields; a quote anywhere in a field opens or closes quoting, a doubled quote inside is one quote (PostgreSQL copyfromparse.c CopyReadAttributesCSV). */
export function splitFields(record: string, delimiter: string, quote: string): string[] {
  const line = record.endsWith("\r") ? record.slice(0, -1) : record;
  const fields: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted && c === quote && line[i + 1] === quote) {
      field += quote;
      i++;
    } else if (c === quote) {
      quoted = !quoted;
    } else if (c === delimiter && !quoted) {
      fields.push(field);
      field = "";
    } else {
      field += c;
    }
  }
  fields.push(field);
  return fields;
}
