// SigV4's amz-date: the ISO 8601 basic format YYYYMMDDTHHMMSSZ of X-Amz-Date and x-amz-date.

const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** The instant an amz-date names; undefined when the text is absent or not in that exact format. */
export function parseAmzDate(text: string | undefined): Date | undefined {
  const match = text === undefined ? null : AMZ_DATE.exec(text);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s] = match;
  return new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
}
