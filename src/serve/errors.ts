/**
 * Errors as the OpenAI API returns them: `{"error": {"message", "type", "param", "code"}}` with the
 * matching HTTP status (400 bad input, 401 bad key, 404 unknown model or route, 413 body too large,
 * 429 queue full, 503 loading or shutting down, 500 anything else).
 */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, 'invalid_request_error', param, code);

export const unauthorized = () => new ApiError(401, 'invalid or missing API key (send "Authorization: Bearer <key>")', 'invalid_request_error', null, 'invalid_api_key');

export const modelNotFound = (name: string, served: string) =>
  new ApiError(404, `the model '${name}' does not exist (this server serves '${served}')`, 'invalid_request_error', 'model', 'model_not_found');

export const notFound = (path: string) => new ApiError(404, `no route ${path}`, 'invalid_request_error', null, 'not_found');

export const tooLarge = (limit: number) => new ApiError(413, `the request body is larger than ${limit} bytes`, 'invalid_request_error', null, 'request_too_large');

export const queueFull = (message: string) => new ApiError(429, message, 'rate_limit_error', null, 'queue_full');

export const unavailable = (message: string, code: string) => new ApiError(503, message, 'service_unavailable_error', null, code);

export const serverError = (message: string) => new ApiError(500, message, 'server_error', null, null);

/** Responds with the error object and its status. */
export function sendError(c: Context, e: ApiError): Response {
  return c.json(e.body(), e.status);
}
