/**
 * A rater's link to the rating page (`vggrpo rate`): the address the page is served on, as a
 * rater opens it. Kept apart from the server so the command and the report need no HTTP code.
 */
import { hostname } from 'node:os';

/** IPv6 literals need brackets in a URL. */
export function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Where `vggrpo rate` serves by default (the command's --host and --port). */
export const RATING_DEFAULTS = { host: '127.0.0.1', port: 8765 } as const;

/** A host a rater can open: the machine's name for a wildcard listen address. */
export function linkHost(host: string): string {
  return host === '0.0.0.0' || host === '::' ? hostname() : host;
}

/**
 * A rater's link to the page served at host:port.
 *
 * @example
 *   raterLink(RATING_DEFAULTS.host, RATING_DEFAULTS.port, token); // http://127.0.0.1:8765/r/TOKEN
 */
export function raterLink(host: string, port: number, token: string): string {
  return `http://${urlHost(linkHost(host))}:${port}/r/${token}`;
}
