// The STS stand-in's XML: awsQuery replies rendered from plain objects, in STS's shapes.
import { STS_XMLNS } from "./limits.ts";

type XmlValue = string | number | XmlFields | undefined;
export interface XmlFields {
  [element: string]: XmlValue;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

export function renderXml(fields: XmlFields): string {
  return Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `<${name}>${typeof value === "object" ? renderXml(value) : escapeXml(String(value))}</${name}>`)
    .join("");
}

export function successXml(action: string, result: XmlFields, requestId: string): string {
  return `<${action}Response xmlns="${STS_XMLNS}"><${action}Result>${renderXml(result)}</${action}Result>` +
    `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`;
}

/** STS writes timestamps in ISO 8601 without milliseconds. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}
