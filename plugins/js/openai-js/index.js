// Adapter `openai-js`: a provider with an OpenAI-compatible chat completions
// API, written in JavaScript.
//
// It is the JavaScript counterpart of the Rust adapter template
// (host/orch-server/templates/adapter/lib.rs.in) and of the guest SDK's
// `openai::parse_completion` and `openai::ChunkStream`
// (plugins/sdk/src/openai.rs): the canonical request is forwarded as it is
// with the provider's model name; answers and streams are already canonical,
// so only their `model` is set back to the name the client asked for
// (every other byte is kept, see `withModel`).
// Errors are classified like the Rust `openai` adapter does, so both give
// clients the same answers.
//
// componentize-js (plugins/js/build.mjs) turns this ES module into a
// WebAssembly component of the `adapter-plugin` world of
// wit/plugin@0.1.0. How WIT types look from JavaScript:
//
// * the exported interface `adapter` is the object exported as `adapter`;
//   its functions are the WIT names in camelCase (`build-request` →
//   `buildRequest`) and the resource `stream-decoder` is the class
//   `StreamDecoder`;
// * records are plain objects with camelCase fields (`retry-after-ms` →
//   `retryAfterMs`); enums are their WIT names as strings (`'bad-request'`);
//   variants are `{ tag, val }` objects (`{ tag: 'forward', val: edits }`,
//   `{ tag: 'bearer' }`); `option<T>` is the value or `undefined`;
//   `list<u8>` is a `Uint8Array`; `u64` is a `BigInt`; a tuple is an array;
// * a function returning `result<T, plugin-error>` returns the `T`, and
//   fails by throwing the `plugin-error` record (a plain object, never an
//   `Error`: an `Error` thrown out of an export traps the instance, and the
//   host fails the attempt).
//
// The sandbox: the component imports nothing but the host's interfaces
// (there is no console, clock or randomness: build.mjs disables them), and
// a fresh instance serves each attempt, so nothing survives a request.

/** The plugin's version (`info().version`); keep it in step with releases. */
const VERSION = '0.1.0';

/** The capabilities of an adapter that forwards the canonical request as it
 * is: everything the chat completions API can express. */
const CAPABILITIES = [
  'tools',
  'vision',
  'json-mode',
  'json-schema',
  'reasoning',
  'usage-in-stream',
  'parallel-tool-calls',
];

/** The largest count a WIT `u32` holds; larger counts saturate to it. */
const U32_MAX = 0xffff_ffff;

/** The longest upstream message kept in an error, in UTF-16 code units. */
const MAX_MESSAGE_LEN = 1024;

/** Word prefixes of API keys that providers echo back in error messages;
 * such words are redacted (messages may reach clients). */
const KEY_PREFIXES = ['sk-', 'sk_', 'gsk_', 'xai-', 'AIza', 'hf_', 'ghp_', 'pk-', 'key-'];

// ------------------------------------------------------------------ errors

/** Whether another attempt may succeed, per error class (the SDK's
 * `ErrorClass::retryable_by_default`): problems of the request itself are
 * not retryable, problems of the key, provider or route are. */
const NOT_RETRYABLE = new Set(['bad-request', 'context-length', 'content-filter']);

/**
 * A `plugin-error` record. Throw it from a function that returns a
 * `result`.
 *
 * @param {string} errorClass an `error-class`, e.g. `'server'`
 * @param {string} message shown to clients: never put secrets in it
 * @param {object} [fields] `status`, `code`, `param`, `retryAfterMs`,
 *   `retryable` (defaults to the class's)
 */
function pluginError(errorClass, message, fields = {}) {
  return {
    class: errorClass,
    retryable: fields.retryable ?? !NOT_RETRYABLE.has(errorClass),
    status: fields.status,
    code: fields.code,
    param: fields.param,
    message,
    retryAfterMs: fields.retryAfterMs,
  };
}

/** The class of an HTTP error status (the SDK's `class_of_status`). */
function classOfStatus(status) {
  switch (status) {
    case 401:
      return 'authentication';
    case 403:
      return 'permission-denied';
    case 404:
      return 'not-found';
    case 408:
      return 'timeout';
    case 429:
      return 'rate-limited';
    case 503:
    case 529:
      return 'overloaded';
    default:
      return status >= 400 && status <= 499 ? 'bad-request' : 'server';
  }
}

/** Reason phrases for the generic message of an error without one. */
const REASONS = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  413: 'Content Too Large',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  529: 'Overloaded',
};

/** A message that reveals nothing but the status (an upstream's error page
 * may hold anything, so its body is never echoed). */
function genericMessage(status) {
  const reason = REASONS[status];
  return `upstream returned HTTP ${status}${reason ? ` ${reason}` : ''}`;
}

/** Whether a word looks like an API key, possibly masked (`sk-…****abcd`). */
function looksLikeKey(word) {
  return (
    word.includes('****') ||
    (word.length >= 12 && KEY_PREFIXES.some((prefix) => word.startsWith(prefix)))
  );
}

/** The upstream's message with key-like words redacted, cut to
 * `MAX_MESSAGE_LEN` (the SDK's `safe_message`). */
function safeMessage(message) {
  const redacted = message
    .split(/(\s+)/)
    .map((piece) => {
      // The word without surrounding punctuation, e.g. `key 'sk-…'.`
      const core = piece.replace(/^[^A-Za-z0-9*]+|[^A-Za-z0-9*]+$/g, '');
      return core && looksLikeKey(core) ? piece.replace(core, '[redacted]') : piece;
    })
    .join('');
  if (redacted.length <= MAX_MESSAGE_LEN) return redacted;
  // Do not cut a surrogate pair in two.
  let cut = MAX_MESSAGE_LEN;
  const last = redacted.charCodeAt(cut - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut -= 1;
  return `${redacted.slice(0, cut)}…`;
}

/** `value` when it is a string, else `undefined`. */
const str = (value) => (typeof value === 'string' ? value : undefined);

/**
 * What an upstream error body says (the SDK's `ErrorDetails::from_value`),
 * from the common shapes: OpenAI `{"error": {"message", "type", "code",
 * "param"}}`, Gemini `{"error": {"code": 429, "message", "status"}}` (also
 * in a one-element array), `{"error": "message"}`, `{"message"}`,
 * `{"detail"}`.
 */
function errorDetails(value) {
  if (Array.isArray(value)) value = value[0];
  if (!isObject(value)) return {};
  const error = value.error;
  if (isObject(error)) {
    const code = error.code;
    return {
      message: str(error.message),
      code: str(code),
      kind: str(error.type) ?? str(error.status),
      param: str(error.param),
      // A numeric code is an HTTP status (Gemini, OpenRouter).
      numericCode: Number.isInteger(code) && code >= 0 && code <= 0xffff ? code : undefined,
    };
  }
  if (typeof error === 'string') return { message: error };
  const kind = str(value.type);
  return {
    message: str(value.message) ?? str(value.detail),
    code: str(value.code),
    kind: kind === 'error' ? undefined : kind,
  };
}

/** The details of a raw error body; none when it is not JSON. */
function errorDetailsOfBody(body) {
  try {
    return errorDetails(JSON.parse(utf8(body)));
  } catch {
    return {};
  }
}

/** The value of the first header called `name` (names compare without
 * case). */
function header(headers, name) {
  const found = headers.find(([n]) => n.toLowerCase() === name);
  return found ? found[1] : undefined;
}

/** A non-negative decimal number, or `undefined` (dates, `inf`, exponents
 * are not valid in retry headers). */
function nonNegative(value) {
  if (value === undefined) return undefined;
  const text = value.trim();
  return /^[0-9.]*[0-9][0-9.]*$/.test(text) && Number.isFinite(Number(text))
    ? Number(text)
    : undefined;
}

/** How long the upstream asked us to wait: `retry-after-ms` (OpenAI), else
 * `retry-after` in seconds. */
function retryAfterMs(headers) {
  const ms = nonNegative(header(headers, 'retry-after-ms'));
  if (ms !== undefined) return Math.min(Math.ceil(ms), U32_MAX);
  const seconds = nonNegative(header(headers, 'retry-after'));
  return seconds === undefined ? undefined : Math.min(Math.ceil(seconds * 1000), U32_MAX);
}

/**
 * Classify an upstream error by its HTTP status, with the message, code and
 * parameter from its body, plus OpenAI's own error codes: the SDK's
 * `classify_details` and the Rust `openai` adapter's `classify`.
 *
 * | status | class | retryable |
 * |---|---|---|
 * | 400, 413, 422, other 4xx | `bad-request` | no |
 * | 401 / 403 | `authentication` / `permission-denied` | yes |
 * | 404 | `not-found` | yes |
 * | 408 | `timeout` | yes |
 * | 429 | `rate-limited` (with `retry-after`) | yes |
 * | 503, 529 | `overloaded` | yes |
 * | 500, 502, 504, other 5xx | `server` | yes |
 *
 * A 2xx status (an error hidden in a successful body) is classified by a
 * numeric `error.code` in 400..=599, else as `server`.
 */
function classify(status, headers, details) {
  const numeric = details.numericCode;
  const effective = status >= 400 ? status : numeric >= 400 && numeric <= 599 ? numeric : undefined;
  let errorClass = effective === undefined ? 'server' : classOfStatus(effective);
  const upstream = details.message;
  let message =
    upstream !== undefined && upstream.trim() !== ''
      ? safeMessage(upstream)
      : genericMessage(status);
  let retryable = !NOT_RETRYABLE.has(errorClass);

  // OpenAI's error codes say more than the status.
  const is = (code) => details.code === code || details.kind === code;
  const startsWith = (prefix) =>
    details.code?.startsWith(prefix) === true || details.kind?.startsWith(prefix) === true;
  if (
    is('context_length_exceeded') ||
    (errorClass === 'bad-request' && mentionsContextLength(message))
  ) {
    [errorClass, retryable] = ['context-length', false];
  } else if (is('insufficient_quota')) {
    // Another key may still have quota.
    [errorClass, retryable] = ['rate-limited', true];
    message = `the key's quota is exhausted: ${message}`;
  } else if (startsWith('content_filter') || is('content_policy_violation')) {
    [errorClass, retryable] = ['content-filter', false];
  } else if (is('model_not_found')) {
    [errorClass, retryable] = ['not-found', true];
  }
  return pluginError(errorClass, message, {
    retryable,
    status,
    code: details.code ?? details.kind,
    param: details.param,
    retryAfterMs: retryAfterMs(headers),
  });
}

/** OpenAI-compatible servers without error codes (vLLM, Ollama) say it in
 * words. */
function mentionsContextLength(message) {
  const lower = message.toLowerCase();
  return [
    'maximum context length',
    'context length exceeded',
    'context_length_exceeded',
    'context window',
  ].some((needle) => lower.includes(needle));
}

/** An error event inside a 200 stream: always retryable (nothing says the
 * request is at fault); `rate-limited` or `overloaded` when its code says
 * so, else `server` (the SDK's `stream_error`). */
function streamError(status, event) {
  const details = errorDetails(event);
  details.message ??= 'upstream reported an error in the stream';
  const error = classify(status, [], details);
  const code = (details.code ?? details.kind ?? '').toLowerCase();
  if (details.numericCode === 429) error.class = 'rate-limited';
  else if (details.numericCode === 503 || details.numericCode === 529) error.class = 'overloaded';
  else if (code.includes('rate_limit') || code.includes('insufficient_quota'))
    error.class = 'rate-limited';
  else if (code.includes('overloaded')) error.class = 'overloaded';
  else error.class = 'server';
  error.retryable = true;
  return error;
}

// -------------------------------------------------------------------- JSON

/** Strict UTF-8 decoding: invalid bytes throw rather than becoming U+FFFD. */
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Bytes (`list<u8>`) as text; throws on invalid UTF-8. */
function utf8(bytes) {
  return decoder.decode(bytes);
}

/** Whether `value` is a JSON object (not an array, not null). */
function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parse `text` as a JSON object, or `undefined` when it is not one. Only a
 * syntax error means "not JSON": anything else (running out of memory)
 * propagates and fails the call. */
function parseObject(text) {
  try {
    const value = JSON.parse(text);
    return isObject(value) ? value : undefined;
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

// Answers and chunks go back with only their top-level `model` changed and
// every other byte as the upstream sent it, like the Rust SDK's
// `json::RawObject`, rather than re-serialised with JSON.stringify. That
// keeps number spellings (`1.50`, integers above 2^53) and, above all,
// memory and time. Measured in the sandbox: SpiderMonkey's JSON.stringify
// of a body holding a 1 MiB string grows linear memory to 80 MiB, past the
// gateway's default 64 MiB cap (slicing and concatenating stays near
// 15 MiB); and JavaScript runs interpreted inside WebAssembly (no JIT), so
// walking a body token by token costs about half a microsecond a token, where
// a response with logprobs has tens of thousands. So the text is walked
// only over cheap members (OpenAI-compatible APIs send `id`, `object`,
// `created`, `model` before `choices`), and otherwise the `"model":` spots
// are found with a native regular expression and checked with JSON.parse.

/** The brackets and quotes a nested value's end is found by. */
const STRUCTURE = /[{}[\]"]/g;
/** A number, `true`, `false` or `null`. */
const PRIMITIVE = /[^\s,\]}]*/y;
/** JSON whitespace. */
const SPACE = /[ \t\n\r]*/y;

function skipSpace(text, i) {
  SPACE.lastIndex = i;
  SPACE.exec(text);
  return SPACE.lastIndex;
}

/** The end of the string starting at `text[i]` (a quote); its content is
 * skipped with indexOf (native code). */
function stringEnd(text, i) {
  for (let quote = text.indexOf('"', i + 1); ; quote = text.indexOf('"', quote + 1)) {
    let backslashes = 0;
    while (text[quote - 1 - backslashes] === '\\') backslashes += 1;
    if (backslashes % 2 === 0) return quote + 1;
  }
}

/** The end of the JSON value starting at `text[i]`. */
function valueEnd(text, i) {
  const first = text[i];
  if (first === '"') return stringEnd(text, i);
  if (first !== '{' && first !== '[') {
    PRIMITIVE.lastIndex = i;
    PRIMITIVE.exec(text);
    return PRIMITIVE.lastIndex;
  }
  let depth = 0;
  STRUCTURE.lastIndex = i;
  for (let m = STRUCTURE.exec(text); m !== null; m = STRUCTURE.exec(text)) {
    const c = m[0];
    if (c === '"') {
      STRUCTURE.lastIndex = stringEnd(text, m.index);
    } else if (c === '{' || c === '[') {
      depth += 1;
    } else {
      depth -= 1;
      if (depth === 0) return STRUCTURE.lastIndex;
    }
  }
  throw new Error('unbalanced JSON'); // unreachable: JSON.parse accepted it
}

/** Whether a member's key (JSON text, quotes included) is `model`. */
function isModelKey(key) {
  return key === '"model"' || (key.includes('\\') && JSON.parse(key) === 'model');
}

/**
 * The top-level members of the JSON object `text`, which JSON.parse has
 * accepted, in order: `{ key, start, end }` with the key as JSON text and
 * `text.slice(start, end)` the value as sent. A generator, so a caller can
 * stop early.
 */
function* rawMembers(text) {
  let i = skipSpace(text, 0) + 1; // past `{`
  for (;;) {
    i = skipSpace(text, i);
    if (text[i] === ',') i = skipSpace(text, i + 1);
    if (text[i] === '}') return;
    const keyEnd = stringEnd(text, i);
    const start = skipSpace(text, skipSpace(text, keyEnd) + 1); // past `:`
    const end = valueEnd(text, start);
    yield { key: text.slice(i, keyEnd), start, end };
    i = end;
  }
}

/** The object rebuilt from its members with `model` set (later duplicates
 * dropped) and every member on one line: a member spread over lines is
 * re-serialised from the parsed `object`. The slow path (it walks every
 * token), for stream chunks with line breaks (SSE data must be one line)
 * and objects with more than one top-level `model`. */
function rebuilt(text, object, value) {
  let out = '{';
  let found = false;
  for (const { key, start, end } of rawMembers(text)) {
    let member = text.slice(start, end);
    if (isModelKey(key)) {
      if (found) continue;
      [found, member] = [true, value];
    } else if (/[\n\r]/.test(member)) {
      member = JSON.stringify(object[JSON.parse(key)]);
    }
    out += `${out.length > 1 ? ',' : ''}${key}:${member}`;
  }
  if (!found) out += `${out.length > 1 ? ',' : ''}"model":${value}`;
  return `${out}}`;
}

/**
 * Where the value of the top-level `model` member of the JSON object `text`
 * (parsed: `object`, which has one) is: `{ start, end }`, or `undefined`
 * when it is not plain (several top-level `model` members).
 */
function modelSpan(text, object) {
  // Walk the members while their values are strings, numbers, booleans or
  // null: the common case, a few steps.
  let i = skipSpace(text, 0) + 1; // past `{`
  for (;;) {
    i = skipSpace(text, i);
    if (text[i] === ',') i = skipSpace(text, i + 1);
    if (text[i] === '}') return undefined; // unreachable: it has a `model`
    const keyEnd = stringEnd(text, i);
    const start = skipSpace(text, skipSpace(text, keyEnd) + 1); // past `:`
    if (text[start] === '{' || text[start] === '[') break; // costly to skip
    const end = valueEnd(text, start);
    if (isModelKey(text.slice(i, keyEnd))) {
      // The only `model` key anywhere after it? Then it is the one.
      return text.indexOf('"model"', end) === -1 ? { start, end } : undefined;
    }
    i = end;
  }
  // Else try each `"model":` in the text (a nested member's, or text that
  // only looks like one, are possible): put a marker there and see whether
  // the top-level `model` became the marker.
  const marker = `${object.model}\u0001`; // differs from the value there
  const KEY = /"model"\s*:\s*/g;
  for (let m = KEY.exec(text); m !== null; m = KEY.exec(text)) {
    const start = KEY.lastIndex;
    const end = valueEnd(text, start);
    const candidate = text.slice(0, start) + JSON.stringify(marker) + text.slice(end);
    let parsed;
    try {
      parsed = JSON.parse(candidate);
    } catch (error) {
      if (error instanceof SyntaxError) continue; // not a value's place
      throw error;
    }
    if (parsed.model === marker) return { start, end };
    KEY.lastIndex = start;
  }
  return undefined;
}

/**
 * The JSON object `text` (parsed: `object`) with its top-level `model` set
 * to the string `model`: in place when it has one, else as its last member.
 * With `oneLine`, the result has no line breaks.
 */
function withModel(text, object, model, oneLine) {
  const value = JSON.stringify(model);
  if (oneLine && /[\n\r]/.test(text)) return rebuilt(text, object, value);
  if (!Object.hasOwn(object, 'model')) {
    const close = text.lastIndexOf('}');
    const comma = Object.keys(object).length > 0 ? ',' : '';
    return `${text.slice(0, close)}${comma}"model":${value}${text.slice(close)}`;
  }
  const span = modelSpan(text, object);
  // `+` builds a rope: one copy, when the host reads the result.
  return span === undefined
    ? rebuilt(text, object, value)
    : text.slice(0, span.start) + value + text.slice(span.end);
}

/** A token count as a `u32`: non-negative integers only, saturating. */
function count(value) {
  return Number.isInteger(value) && value >= 0 ? Math.min(value, U32_MAX) : undefined;
}

/**
 * The `usage` record of an OpenAI `usage` object (the SDK's
 * `usage_from_openai`): `prompt_tokens`, `completion_tokens`,
 * `prompt_tokens_details.cached_tokens` (or DeepSeek's
 * `prompt_cache_hit_tokens`) and `completion_tokens_details.reasoning_tokens`;
 * `undefined` unless it has at least one of the first two.
 */
function usageOf(usage) {
  if (!isObject(usage)) return undefined;
  const input = count(usage.prompt_tokens);
  const output = count(usage.completion_tokens);
  if (input === undefined && output === undefined) return undefined;
  const detail = (details, field) =>
    isObject(usage[details]) ? count(usage[details][field]) : undefined;
  return {
    inputTokens: input ?? 0,
    outputTokens: output ?? 0,
    cachedInputTokens:
      detail('prompt_tokens_details', 'cached_tokens') ?? count(usage.prompt_cache_hit_tokens),
    cacheWriteInputTokens: undefined,
    reasoningTokens: detail('completion_tokens_details', 'reasoning_tokens'),
  };
}

/** Whether a chunk's `delta` carries model output. */
function deltaHasOutput(delta) {
  if (!isObject(delta)) return false;
  const nonEmpty = (field) => typeof delta[field] === 'string' && delta[field] !== '';
  const calls = delta.tool_calls;
  return (
    ['content', 'refusal', 'reasoning_content', 'reasoning'].some(nonEmpty) ||
    (Array.isArray(calls) ? calls.length > 0 : calls !== undefined && calls !== null) ||
    (delta.function_call !== undefined && delta.function_call !== null)
  );
}

/**
 * What a canonical `chat.completion.chunk` means to the host (the SDK's
 * `chunk_kind`): `content` when any choice's delta carries output, `usage`
 * when there are no choices and `usage` is an object, else `meta` (role
 * announcements, finish reasons).
 */
function chunkKind(chunk) {
  const choices = Array.isArray(chunk.choices) ? chunk.choices : undefined;
  if (choices?.some((choice) => isObject(choice) && deltaHasOutput(choice.delta))) {
    return 'content';
  }
  const noChoices = choices === undefined || choices.length === 0;
  return noChoices && isObject(chunk.usage) ? 'usage' : 'meta';
}

// --------------------------------------------------------------- provider

/** `{base_url}/{path}` without a doubled slash (the SDK's
 * `provider::endpoint`). */
function endpoint(baseUrl, path) {
  return `${baseUrl.replace(/\/+$/, '')}/${path}`;
}

/** Check a provider's base URL (the SDK's `check_base_url`): an absolute
 * http:// or https:// URL with a host, without whitespace, credentials,
 * query or fragment. */
function checkBaseUrl(provider) {
  const url = provider.baseUrl;
  const invalid = (why) =>
    pluginError('bad-request', `provider \`${provider.name}\`: base_url \`${url}\` ${why}`, {
      param: 'base_url',
    });
  const scheme = /^https?:\/\//i.exec(url);
  if (!scheme) throw invalid('must be an http:// or https:// URL');
  // Whitespace and control characters (C0, DEL, C1).
  if (/[\s\u0000-\u001f\u007f-\u009f]/.test(url)) throw invalid('must not contain whitespace');
  if (/[?#]/.test(url)) throw invalid('must not contain a query or fragment');
  const authority = url.slice(scheme[0].length).split('/')[0];
  if (authority.includes('@')) throw invalid('must not contain credentials');
  if (!/^[A-Za-z0-9.\-_:[\]%]+$/.test(authority) || authority.startsWith(':')) {
    throw invalid('has no valid host');
  }
}

/** This adapter has no options: the provider's options must be empty. */
function checkOptions(provider) {
  const text = provider.options.trim();
  const options = text === '' ? {} : parseObject(text);
  if (options === undefined) {
    throw pluginError(
      'bad-request',
      `options of provider \`${provider.name}\` must be a JSON object`,
    );
  }
  const [key] = Object.keys(options);
  if (key !== undefined) {
    throw pluginError(
      'bad-request',
      `provider \`${provider.name}\`: unknown option \`${key}\` for the openai-js adapter (it has no options)`,
    );
  }
}

// ----------------------------------------------------------- the decoder

/**
 * The `stream-decoder` resource: decodes the SSE stream of an
 * OpenAI-compatible API, one `chat.completion.chunk` per event, then
 * `data: [DONE]` (the SDK's `openai::ChunkStream`). The host creates one
 * per streamed attempt and keeps it (and its instance) until the stream
 * ends.
 */
class StreamDecoder {
  /**
   * @param {object} ctx the `request-context`
   * @param {number} status the upstream's (2xx) status
   * @param {Array<[string, string]>} _headers the upstream's headers
   */
  constructor(ctx, status, _headers) {
    this.requestedModel = ctx.requestedModel;
    this.status = status;
    this.done = false;
  }

  /** Decode one SSE event into `stream-item`s. */
  push(frame) {
    if (this.done) return []; // Anything after [DONE] is ignored.
    let data;
    try {
      data = utf8(frame.data).trim();
    } catch {
      throw pluginError('server', 'upstream stream frame is not valid UTF-8');
    }
    if (data === '') return [];
    if (data === '[DONE]') {
      this.done = true;
      return [{ tag: 'done' }];
    }
    const chunk = parseObject(data);
    if (chunk === undefined) {
      throw pluginError('server', 'upstream sent a stream event that is not a JSON object', {
        status: this.status,
      });
    }
    if (frame.event === 'error' || (chunk.error !== undefined && chunk.error !== null)) {
      throw streamError(this.status, chunk);
    }
    const items = [];
    const usage = usageOf(chunk.usage);
    if (usage !== undefined) items.push({ tag: 'usage', val: usage });
    items.push({
      tag: 'chunk',
      val: {
        kind: chunkKind(chunk),
        event: undefined,
        data: withModel(data, chunk, this.requestedModel, true),
      },
    });
    return items;
  }

  /** The upstream body ended: fine after [DONE], a server error before. */
  finish() {
    if (this.done) return [];
    throw pluginError('server', 'upstream stream ended before [DONE]', { status: this.status });
  }
}

// ------------------------------------------------------------ the adapter

/** The exported `adapter` interface of `llm-orchestrator:plugin@0.1.0`. */
export const adapter = {
  StreamDecoder,

  info() {
    return {
      id: 'openai-js',
      version: VERSION,
      kind: 'adapter',
      dialect: 'openai',
      capabilities: CAPABILITIES,
      description: 'An OpenAI-compatible provider (example adapter written in JavaScript)',
    };
  },

  checkProvider(provider) {
    checkBaseUrl(provider);
    checkOptions(provider);
  },

  /** Forward the canonical request with the provider's model name, asking
   * for the usage chunk when streaming; the host applies the edits without
   * this plugin parsing the body. */
  buildRequest(ctx, _payload) {
    if (ctx.operation !== 'chat') {
      throw pluginError(
        'unsupported',
        `the openai-js adapter does not support the ${ctx.operation} operation`,
      );
    }
    const edits = [{ field: 'model', value: JSON.stringify(ctx.upstreamModel) }];
    if (ctx.streaming) {
      edits.push({ field: 'stream_options', value: '{"include_usage":true}' });
    }
    return {
      method: 'POST',
      url: endpoint(ctx.provider.baseUrl, 'chat/completions'),
      headers: [['content-type', 'application/json']],
      body: { tag: 'forward', val: edits },
      credential: { tag: 'bearer' },
      framing: 'sse',
    };
  },

  /** A `chat.completion` with its `model` set to the requested one and its
   * usage read; an error hidden in the 2xx body is classified. */
  parseResponse(ctx, status, headers, body) {
    let text;
    try {
      text = utf8(body);
    } catch {
      text = ''; // Not UTF-8: not a JSON object either.
    }
    const completion = parseObject(text);
    if (completion === undefined) {
      throw pluginError('server', 'upstream returned a response body that is not a JSON object', {
        status,
      });
    }
    if (completion.error !== undefined && completion.error !== null) {
      throw classify(status, headers, errorDetails(completion));
    }
    return {
      body: withModel(text, completion, ctx.requestedModel, false),
      usage: usageOf(completion.usage),
    };
  },

  classifyError(_ctx, status, headers, body) {
    return classify(status, headers, errorDetailsOfBody(body));
  },

  /** The models listing: cheap, unbilled, and it checks the key. */
  probeRequest(provider) {
    return {
      method: 'GET',
      url: endpoint(provider.baseUrl, 'models'),
      headers: [['accept', 'application/json']],
      body: { tag: 'empty' },
      credential: { tag: 'bearer' },
      framing: 'sse',
    };
  },

  judgeProbe(_provider, status, headers, body) {
    if (status < 200 || status > 299) {
      throw classify(status, headers, errorDetailsOfBody(body));
    }
  },
};

// ------------------------------------------------------------------ warm-up

// componentize-js runs this module's top level once, at build time, and
// snapshots the engine's memory after it (with Wizer); every instance the
// gateway creates starts from that snapshot. SpiderMonkey compiles a
// function's bytecode when it is first called, so a function first called
// in an instance is compiled in every instance, on the request path. Calling
// the adapter once here puts that work in the snapshot instead. It uses no
// host import and leaves no state behind (the decoder is thrown away).
function warmUp() {
  const provider = { name: 'warm-up', baseUrl: 'https://api.example.com/v1', options: '{}' };
  const ctx = {
    requestId: 'warm-up',
    operation: 'chat',
    requestedModel: 'alias',
    upstreamModel: 'model',
    streaming: true,
    form: 'canonical',
    ingressDialect: 'openai',
    receivedAtMs: 0n,
    provider,
  };
  const bytes = (text) => new TextEncoder().encode(text);
  const usage =
    '"usage":{"prompt_tokens":3,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":0}}';
  adapter.info();
  adapter.checkProvider(provider);
  adapter.buildRequest(ctx, '{}');
  adapter.probeRequest(provider);
  adapter.judgeProbe(provider, 200, [], bytes('{"data":[]}'));
  adapter.parseResponse(
    ctx,
    200,
    [],
    bytes(`{"id":"c","model":"m","choices":[{"message":{"content":"Hi"}}],${usage}}`),
  );
  adapter.parseResponse(ctx, 200, [], bytes(`{"choices":[{"model":"m"}],"model":"m",${usage}}`));
  adapter.classifyError(
    ctx,
    429,
    [['retry-after', '1']],
    bytes('{"error":{"message":"slow down","code":"rate_limit_exceeded"}}'),
  );
  const decoder = new StreamDecoder(ctx, 200, []);
  decoder.push({
    data: bytes(
      '{"id":"c","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}',
    ),
  });
  decoder.push({
    data: bytes('{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}]}'),
  });
  decoder.push({ data: bytes(`{"id":"c","model":"m","choices":[],${usage}}`) });
  decoder.push({ data: bytes('[DONE]') });
  decoder.finish();
  for (const call of [
    () => adapter.parseResponse(ctx, 200, [], bytes('{"error":{"message":"m"}}')),
    () =>
      new StreamDecoder(ctx, 200, []).push({
        event: 'error',
        data: bytes('{"error":{"message":"m"}}'),
      }),
    () => new StreamDecoder(ctx, 200, []).finish(),
  ]) {
    try {
      call();
    } catch {
      // The plugin-errors these throw are the point.
    }
  }
}

warmUp();
