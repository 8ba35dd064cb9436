// Unit tests of the openai-js adapter, run by Node.js directly (the module
// imports nothing, so it runs outside WebAssembly as it is):
//
//   cd plugins/js && npm test
//
// The cases mirror the Rust SDK's tests of `openai::ChunkStream`,
// `parse_completion` and `classify_status`, and the Rust openai adapter's
// `classify`, so both adapters classify alike.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { adapter } from './index.js';

const provider = (baseUrl, options = '{}') => ({ name: 'p', baseUrl, options });

const ctx = (streaming = false, operation = 'chat') => ({
  requestId: 'r',
  operation,
  requestedModel: 'alias',
  upstreamModel: 'upstream',
  streaming,
  form: 'canonical',
  ingressDialect: 'openai',
  receivedAtMs: 0n,
  provider: provider('https://api.example.com/v1/'),
});

const bytes = (text) => new TextEncoder().encode(text);

/** The plugin-error a call throws. */
function thrown(call) {
  try {
    call();
  } catch (error) {
    assert.ok(!(error instanceof Error), `an Error traps the instance: ${error}`);
    return error;
  }
  assert.fail('expected a plugin-error');
}

test('info', () => {
  const info = adapter.info();
  assert.equal(info.id, 'openai-js');
  assert.equal(info.kind, 'adapter');
  assert.equal(info.dialect, 'openai');
  assert.ok(info.capabilities.includes('usage-in-stream'));
});

test('check-provider accepts http(s) base URLs and no options', () => {
  for (const url of [
    'https://api.example.com',
    'http://127.0.0.1:9090/v1',
    'http://[::1]:8000/v1/',
  ]) {
    assert.equal(adapter.checkProvider(provider(url)), undefined, url);
  }
  assert.equal(adapter.checkProvider(provider('https://a.test', '')), undefined);
  for (const [url, why] of [
    ['api.example.com/v1', 'must be an http:// or https:// URL'],
    ['ftp://api.example.com', 'must be an http:// or https:// URL'],
    ['https://api example.com', 'must not contain whitespace'],
    ['https://api.example.com/v1?x=1', 'must not contain a query or fragment'],
    ['https://user:key@api.example.com', 'must not contain credentials'],
    ['https:///v1', 'has no valid host'],
    ['https://exämple.com', 'has no valid host'],
  ]) {
    const error = thrown(() => adapter.checkProvider(provider(url)));
    assert.equal(error.class, 'bad-request');
    assert.equal(error.param, 'base_url');
    assert.equal(error.message, `provider \`p\`: base_url \`${url}\` ${why}`);
  }
  const error = thrown(() => adapter.checkProvider(provider('https://a.test', '{"azure":{}}')));
  assert.match(error.message, /unknown option `azure`/);
});

test('build-request forwards with the upstream model', () => {
  const request = adapter.buildRequest(ctx(false), '{"model":"alias"}');
  assert.deepEqual(request, {
    method: 'POST',
    url: 'https://api.example.com/v1/chat/completions',
    headers: [['content-type', 'application/json']],
    body: { tag: 'forward', val: [{ field: 'model', value: '"upstream"' }] },
    credential: { tag: 'bearer' },
    framing: 'sse',
  });
  const streaming = adapter.buildRequest(ctx(true), '{}');
  assert.deepEqual(streaming.body.val[1], {
    field: 'stream_options',
    value: '{"include_usage":true}',
  });
  const error = thrown(() => adapter.buildRequest(ctx(false, 'embeddings'), '{}'));
  assert.equal(error.class, 'unsupported');
  assert.equal(error.retryable, true);
});

test('parse-response sets the model and reads usage', () => {
  const body = bytes(
    '{"id":"c","model":"upstream","usage":{"prompt_tokens":10,"completion_tokens":5,' +
      '"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}',
  );
  const parsed = adapter.parseResponse(ctx(), 200, [], body);
  assert.equal(JSON.parse(parsed.body).model, 'alias');
  assert.ok(parsed.body.startsWith('{"id":"c","model":"alias"'), 'the field keeps its place');
  assert.deepEqual(parsed.usage, {
    inputTokens: 10,
    outputTokens: 5,
    cachedInputTokens: 4,
    cacheWriteInputTokens: undefined,
    reasoningTokens: 2,
  });
  assert.equal(
    adapter.parseResponse(ctx(), 200, [], bytes('{"usage":{"total_tokens":3}}')).usage,
    undefined,
  );
  const deepseek = adapter.parseResponse(
    ctx(),
    200,
    [],
    bytes('{"usage":{"prompt_tokens":7,"prompt_cache_hit_tokens":3}}'),
  );
  assert.equal(deepseek.usage.cachedInputTokens, 3);
  const huge = adapter.parseResponse(
    ctx(),
    200,
    [],
    bytes('{"usage":{"prompt_tokens":1,"completion_tokens":5000000000}}'),
  );
  assert.equal(huge.usage.outputTokens, 0xffff_ffff);
  assert.equal(
    JSON.parse(adapter.parseResponse(ctx(), 200, [], bytes('{"error":null}')).body).model,
    'alias',
  );
});

test('parse-response keeps every byte but the model', () => {
  const parse = (text) => adapter.parseResponse(ctx(), 200, [], bytes(text)).body;
  assert.equal(
    parse(
      '{"id":"c","model":"upstream","x":1.50,"big":12345678901234567890123,"usage":{"prompt_tokens":2}}',
    ),
    '{"id":"c","model":"alias","x":1.50,"big":12345678901234567890123,"usage":{"prompt_tokens":2}}',
  );
  // Line breaks stay (a response body may have them; stream chunks may not).
  const pretty =
    '{\n  "id": "x",\n  "model": "m",\n  "choices": [{"logprobs": {"content": [{"logprob": -1.2e-5}]}}],\n  "big": 12345678901234567890123\n}';
  assert.equal(parse(pretty), pretty.replace('"model": "m"', '"model": "alias"'));
  assert.equal(
    parse('{ "a" : {\n "b": [1,\n 2] } }'),
    '{ "a" : {\n "b": [1,\n 2] } ,"model":"alias"}',
  );
  // `model` after a nested member is found by its `"model":` and checked.
  assert.equal(
    parse('{"choices":[{"model":"nested","x":"\\"model\\":1"}],"x\\"model":2,"model" : "m","z":1}'),
    '{"choices":[{"model":"nested","x":"\\"model\\":1"}],"x\\"model":2,"model" : "alias","z":1}',
  );
  assert.equal(parse('{"c":[1],"model":"a","model":"b"}'), '{"c":[1],"model":"a","model":"alias"}');
  // A nested `model` after the top-level one takes the slow path: same result.
  assert.equal(parse('{"model":"m","c":{"model":"x"}}'), '{"model":"alias","c":{"model":"x"}}');
  assert.equal(parse('{}'), '{"model":"alias"}');
  assert.equal(parse('{"model":"a","model":"b","c":[]}'), '{"model":"alias","c":[]}');
  assert.equal(parse('{"mod\\u0065l":"a"}'), '{"mod\\u0065l":"alias"}');
  const tricky =
    '{"s":"a \\"quoted\\" } ] { [ \\\\","n":{"model":"inner","a":[{"b":"]"}]},"t":true,"z":null,"model":"m"}';
  assert.equal(parse(tricky), tricky.replace('"model":"m"', '"model":"alias"'));
  assert.equal(JSON.parse(parse(tricky)).n.model, 'inner', 'nested members are not touched');
});

test('parse-response errors', () => {
  for (const body of [bytes('[1]'), bytes('not json'), new Uint8Array([0xff]), bytes('')]) {
    const error = thrown(() => adapter.parseResponse(ctx(), 201, [], body));
    assert.equal(error.class, 'server');
    assert.equal(error.status, 201);
  }
  const hidden = thrown(() =>
    adapter.parseResponse(ctx(), 200, [], bytes('{"error":{"message":"busy","code":503}}')),
  );
  assert.equal(hidden.class, 'overloaded');
  assert.equal(hidden.message, 'busy');
  const plain = thrown(() =>
    adapter.parseResponse(ctx(), 200, [], bytes('{"error":{"message":"oops"}}')),
  );
  assert.deepEqual([plain.class, plain.retryable, plain.status], ['server', true, 200]);
});

const classify = (status, body = '', headers = []) =>
  adapter.classifyError(ctx(), status, headers, bytes(body));

test('classify-error by status', () => {
  for (const [status, errorClass, retryable] of [
    [400, 'bad-request', false],
    [401, 'authentication', true],
    [403, 'permission-denied', true],
    [404, 'not-found', true],
    [408, 'timeout', true],
    [409, 'bad-request', false],
    [413, 'bad-request', false],
    [422, 'bad-request', false],
    [429, 'rate-limited', true],
    [500, 'server', true],
    [502, 'server', true],
    [503, 'overloaded', true],
    [504, 'server', true],
    [529, 'overloaded', true],
  ]) {
    const error = classify(status);
    assert.deepEqual(
      [error.class, error.retryable, error.status],
      [errorClass, retryable, status],
      `${status}`,
    );
  }
  assert.equal(
    classify(502, '<html>secret</html>').message,
    'upstream returned HTTP 502 Bad Gateway',
  );
  assert.equal(classify(418).message, 'upstream returned HTTP 418');
});

test('classify-error reads the OpenAI error and retry headers', () => {
  const error = classify(
    429,
    '{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}',
    [
      ['retry-after-ms', '1500'],
      ['retry-after', '2'],
    ],
  );
  assert.deepEqual(
    [error.class, error.retryable, error.retryAfterMs],
    ['rate-limited', true, 1500],
  );
  assert.equal(error.code, 'rate_limit_exceeded');
  assert.equal(error.message, 'Rate limit reached');
  assert.equal(classify(503, '', [['Retry-After', '3']]).retryAfterMs, 3000);
  assert.equal(
    classify(429, '', [['retry-after', 'Wed, 21 Oct 2015 07:28:00 GMT']]).retryAfterMs,
    undefined,
  );

  const bad = classify(
    400,
    '{"error":{"message":"bad messages","type":"invalid_request_error","param":"messages","code":null}}',
  );
  assert.deepEqual([bad.code, bad.param], ['invalid_request_error', 'messages']);
  const long = classify(400, '{"error":{"message":"too long","code":"context_length_exceeded"}}');
  assert.deepEqual([long.class, long.retryable], ['context-length', false]);
  const words = classify(
    400,
    '{"object":"error","message":"This model\'s maximum context length is 4096 tokens.","code":400}',
  );
  assert.equal(words.class, 'context-length');
  assert.equal(classify(500, '{"error":{"message":"maximum context length bug"}}').class, 'server');
  const quota = classify(
    429,
    '{"error":{"message":"You exceeded your current quota.","code":"insufficient_quota"}}',
  );
  assert.deepEqual([quota.class, quota.retryable], ['rate-limited', true]);
  assert.match(quota.message, /quota is exhausted: You exceeded/);
  assert.equal(
    classify(400, '{"error":{"message":"f","code":"content_filter"}}').class,
    'content-filter',
  );
  assert.equal(
    classify(400, '{"error":{"message":"m","code":"model_not_found"}}').class,
    'not-found',
  );
  const gemini = classify(
    429,
    '[{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}]',
  );
  assert.deepEqual([gemini.code, gemini.message], ['RESOURCE_EXHAUSTED', 'Resource exhausted']);
  assert.equal(classify(404, '{"error":"model \'x\' not found"}').message, "model 'x' not found");
  assert.equal(classify(422, '{"detail":"field required"}').message, 'field required');
});

test('classify-error redacts keys and cuts long messages', () => {
  const error = classify(
    401,
    '{"error":{"message":"Incorrect API key provided: sk-proj-abc********************xyz1. You can find your API key at https://platform.openai.com.","code":"invalid_api_key"}}',
  );
  assert.equal(
    error.message,
    'Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com.',
  );
  assert.equal(
    classify(400, '{"error":{"message":"key \'gsk_0123456789abcdef\' bad"}}').message,
    "key '[redacted]' bad",
  );
  assert.equal(classify(400, '{"error":{"message":"task-12 sk-1"}}').message, 'task-12 sk-1');
  const long = classify(400, JSON.stringify({ error: { message: 'word '.repeat(1000) } })).message;
  assert.ok(long.length <= 1025 && long.endsWith('…'));
});

test('probe', () => {
  const probe = adapter.probeRequest(provider('https://api.groq.com/openai/v1/'));
  assert.equal(probe.method, 'GET');
  assert.equal(probe.url, 'https://api.groq.com/openai/v1/models');
  assert.deepEqual(probe.body, { tag: 'empty' });
  assert.deepEqual(probe.credential, { tag: 'bearer' });
  assert.equal(
    adapter.judgeProbe(provider('https://a.test'), 200, [], bytes('{"data":[]}')),
    undefined,
  );
  const error = thrown(() => adapter.judgeProbe(provider('https://a.test'), 401, [], bytes('')));
  assert.equal(error.class, 'authentication');
});

const decoder = () => new adapter.StreamDecoder(ctx(true), 200, []);
const frame = (data, event) => ({ event, data: bytes(data) });

test('stream: chunks, usage and done', () => {
  const d = decoder();
  assert.deepEqual(d.push(frame('  \n')), []);
  const [chunk] = d.push(
    frame('{"model":"upstream","choices":[{"index":0,"delta":{"content":"Hi"}}]}'),
  );
  assert.deepEqual(chunk, {
    tag: 'chunk',
    val: {
      kind: 'content',
      event: undefined,
      data: '{"model":"alias","choices":[{"index":0,"delta":{"content":"Hi"}}]}',
    },
  });
  const items = d.push(
    frame('{"model":"upstream","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}'),
  );
  assert.deepEqual(items[0], {
    tag: 'usage',
    val: {
      inputTokens: 1,
      outputTokens: 2,
      cachedInputTokens: undefined,
      cacheWriteInputTokens: undefined,
      reasoningTokens: undefined,
    },
  });
  assert.equal(items[1].val.kind, 'usage');
  assert.deepEqual(d.push(frame(' [DONE] ')), [{ tag: 'done' }]);
  assert.deepEqual(d.push(frame('garbage')), []);
  assert.deepEqual(d.finish(), []);
});

test('stream: chunk data is one line', () => {
  const [chunk] = decoder().push(
    frame('{"model": "m",\n "choices": [\n{"index": 0, "delta": {"content": "a\\nb"}}]}'),
  );
  assert.equal(
    chunk.val.data,
    '{"model":"alias","choices":[{"index":0,"delta":{"content":"a\\nb"}}]}',
  );
  assert.equal(chunk.val.kind, 'content');
});

test('stream: chunk data keeps every byte but the model', () => {
  const data =
    '{"id":"c","x":1.50,"model":"m","choices":[{"delta":{"content":"\\"}{"}}],"n":{"model":"inner"}}';
  const [chunk] = decoder().push(frame(data));
  assert.equal(chunk.val.data, data.replace('"model":"m"', '"model":"alias"'));
  const [added] = decoder().push(frame('{"choices":[]}'));
  assert.equal(added.val.data, '{"choices":[],"model":"alias"}');
});

test('stream: chunk kinds', () => {
  for (const [chunk, kind] of [
    [{ choices: [{ delta: { role: 'assistant' } }] }, 'meta'],
    [{ choices: [{ delta: { content: '' } }] }, 'meta'],
    [{ choices: [{ delta: {}, finish_reason: 'stop' }] }, 'meta'],
    [{ choices: [{ delta: { content: 'x' } }] }, 'content'],
    [{ choices: [{ delta: { refusal: 'no' } }] }, 'content'],
    [{ choices: [{ delta: { reasoning_content: 'hm' } }] }, 'content'],
    [{ choices: [{ delta: { reasoning: 'hm' } }] }, 'content'],
    [{ choices: [{ delta: { tool_calls: [{ index: 0 }] } }] }, 'content'],
    [{ choices: [{ delta: { tool_calls: [] } }] }, 'meta'],
    [{ choices: [{ delta: { tool_calls: null } }] }, 'meta'],
    [{ choices: [{ delta: { function_call: { name: 'f' } } }] }, 'content'],
    [{ choices: [{ delta: { function_call: null } }] }, 'meta'],
    [{ choices: [{ delta: {} }, { delta: { content: 'second' } }] }, 'content'],
    [{ choices: [], usage: { prompt_tokens: 1 } }, 'usage'],
    [{ usage: { prompt_tokens: 1 } }, 'usage'],
    [{ choices: [], usage: null }, 'meta'],
    [{ choices: [{ delta: { content: 'x' } }], usage: { prompt_tokens: 1 } }, 'content'],
    [{ choices: [{ delta: {} }], usage: { prompt_tokens: 1 } }, 'meta'],
  ]) {
    const items = decoder().push(frame(JSON.stringify(chunk)));
    assert.equal(items.at(-1).val.kind, kind, JSON.stringify(chunk));
  }
});

test('stream: errors', () => {
  for (const [event, data, errorClass] of [
    [undefined, { error: { message: 'm', code: 429 } }, 'rate-limited'],
    [undefined, { error: { message: 'm', code: 529 } }, 'overloaded'],
    [undefined, { error: { type: 'insufficient_quota' } }, 'rate-limited'],
    [undefined, { error: { code: 'model_overloaded' } }, 'overloaded'],
    [undefined, { error: { code: 'bad_thing' } }, 'server'],
    ['error', { message: 'boom' }, 'server'],
  ]) {
    const error = thrown(() => decoder().push(frame(JSON.stringify(data), event)));
    assert.deepEqual(
      [error.class, error.retryable, error.status],
      [errorClass, true, 200],
      JSON.stringify(data),
    );
  }
  assert.equal(
    thrown(() => decoder().push(frame('{"error":{}}'))).message,
    'upstream reported an error in the stream',
  );
  assert.equal(thrown(() => decoder().push(frame('[1]'))).class, 'server');
  assert.equal(
    thrown(() => decoder().push({ data: new Uint8Array([0xff, 0xfe]) })).class,
    'server',
  );
  const cut = thrown(() => decoder().finish());
  assert.deepEqual(
    [cut.class, cut.message, cut.status],
    ['server', 'upstream stream ended before [DONE]', 200],
  );
});
