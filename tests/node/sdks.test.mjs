// The npm SDKs, unchanged, against a running slm-api (SLM_URL, e.g. http://127.0.0.1:8000):
// the official `openai` and `@anthropic-ai/sdk`, and the Vercel AI SDK's OpenAI-compatible
// provider. Run by tests/clients/test_node_sdks.py with `node --test`; every case names what it checks.
import assert from "node:assert/strict";
import { suite, test } from "node:test";

import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import Anthropic from "@anthropic-ai/sdk";
import { embedMany, generateObject, generateText, streamText, tool } from "ai";
import OpenAI from "openai";
import { z } from "zod";

const URL = process.env.SLM_URL;
assert.ok(URL, "SLM_URL is not set");
const CHAT = process.env.SLM_CHAT_MODEL ?? "smollm2-135m-instruct-q4_1";
const EMBED = process.env.SLM_EMBED_MODEL ?? "all-minilm-l6-v2";
const DIMS = Number(process.env.SLM_EMBED_DIMS ?? 384);

const openai = new OpenAI({ baseURL: `${URL}/v1`, apiKey: "unused", maxRetries: 0, timeout: 120e3 });
const claude = new Anthropic({ baseURL: URL, apiKey: "unused", maxRetries: 0, timeout: 120e3 });
const slm = createOpenAICompatible({
  name: "slm", baseURL: `${URL}/v1`, apiKey: "unused", supportsStructuredOutputs: true,
  includeUsage: true,
});

const ASK = [{ role: "user", content: "What is the capital of France?" }];
const WEATHER = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather for a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    },
  },
};
const CITY = {
  type: "object",
  properties: { city: { type: "string" }, country: { type: "string" } },
  required: ["city", "country"],
  additionalProperties: false,
};

// Independent cases at once: the server batches them (N_PARALLEL sequences in one decode).
suite("the SDKs, four requests at a time", { concurrency: 4 }, () => {
  test("openai: chat.completions.create", async () => {
    const r = await openai.chat.completions.create({ model: CHAT, messages: ASK, max_tokens: 8, temperature: 0 });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0].message.role, "assistant");
    assert.ok(r.choices[0].message.content.length > 0);
    assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
    assert.ok(r.usage.completion_tokens >= 1);
  });

  test("openai: streamed chat, with usage in the last chunk", async () => {
    const stream = await openai.chat.completions.create({
      model: CHAT, messages: ASK, max_tokens: 8, temperature: 0, stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, "chat.completion.chunk");
      if (chunk.choices.length) {
        text += chunk.choices[0].delta.content ?? "";
        finish = chunk.choices[0].finish_reason ?? finish;
      }
      usage = chunk.usage ?? usage;
    }
    assert.ok(text.length > 0);
    assert.ok(["stop", "length"].includes(finish));
    assert.ok(usage.completion_tokens >= 1);
  });

  test("openai: a named tool call with JSON arguments", async () => {
    const r = await openai.chat.completions.create({
      model: CHAT, max_tokens: 40, temperature: 0, tools: [WEATHER],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
    });
    const call = r.choices[0].message.tool_calls[0];
    assert.equal(call.type, "function");
    assert.equal(call.function.name, "get_weather");
    assert.equal(typeof JSON.parse(call.function.arguments).city, "string");
    assert.equal(r.choices[0].finish_reason, "tool_calls");
  });

  test("openai: structured output (json_schema, strict)", async () => {
    const r = await openai.chat.completions.create({
      model: CHAT, max_tokens: 60, temperature: 0, messages: ASK,
      response_format: { type: "json_schema", json_schema: { name: "city", schema: CITY, strict: true } },
    });
    const value = JSON.parse(r.choices[0].message.content);
    assert.deepEqual(Object.keys(value).sort(), ["city", "country"]);
  });

  test("openai: embeddings", async () => {
    const r = await openai.embeddings.create({ model: EMBED, input: ["a red apple", "a green pear"] });
    assert.equal(r.data.length, 2);
    // The SDK asks for base64 and decodes it back to floats: both ends of that must agree.
    assert.equal(r.data[0].embedding.length, DIMS);
    assert.ok(r.data[0].embedding.every(Number.isFinite));
    assert.ok(r.usage.prompt_tokens > 0);
  });

  test("anthropic: messages.create", async () => {
    const m = await claude.messages.create({ model: CHAT, max_tokens: 8, messages: ASK, temperature: 0 });
    assert.equal(m.type, "message");
    assert.equal(m.role, "assistant");
    assert.equal(m.content[0].type, "text");
    assert.ok(m.content[0].text.length > 0);
    assert.ok(["end_turn", "max_tokens"].includes(m.stop_reason));
  });

  test("anthropic: messages.stream and its final message", async () => {
    const stream = claude.messages.stream({ model: CHAT, max_tokens: 8, messages: ASK, temperature: 0 });
    let text = "";
    stream.on("text", (t) => { text += t; });
    const m = await stream.finalMessage();
    assert.ok(text.length > 0);
    assert.equal(m.content[0].text, text);
    assert.ok(m.usage.output_tokens >= 1);
  });

  test("anthropic: a forced tool_use block", async () => {
    const m = await claude.messages.create({
      model: CHAT, max_tokens: 40, temperature: 0,
      tools: [{ name: "get_weather", description: "Current weather for a city", input_schema: WEATHER.function.parameters }],
      tool_choice: { type: "tool", name: "get_weather" },
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
    });
    const use = m.content.find((b) => b.type === "tool_use");
    assert.equal(use.name, "get_weather");
    assert.equal(typeof use.input.city, "string");
    assert.equal(m.stop_reason, "tool_use");
  });

  test("ai-sdk: a forced tool call", async () => {
    const g = await generateText({
      model: slm.chatModel(CHAT), maxOutputTokens: 40, temperature: 0, maxRetries: 0,
      prompt: "What is the weather in Paris?",
      tools: { get_weather: tool({ description: "Current weather for a city", inputSchema: z.object({ city: z.string() }) }) },
      toolChoice: { type: "tool", toolName: "get_weather" },
    });
    assert.equal(g.toolCalls.length, 1);
    assert.equal(g.toolCalls[0].toolName, "get_weather");
    assert.equal(typeof g.toolCalls[0].input.city, "string");
  });

  test("ai-sdk: generateObject with a zod schema", async () => {
    const { object } = await generateObject({
      model: slm.chatModel(CHAT), maxOutputTokens: 60, temperature: 0, maxRetries: 0,
      prompt: "What is the capital of France?",
      schema: z.object({ city: z.string(), country: z.string() }),
    });
    assert.equal(typeof object.city, "string");
    assert.equal(typeof object.country, "string");
  });

  test("ai-sdk: embedMany", async () => {
    const { embeddings } = await embedMany({ model: slm.embeddingModel(EMBED), values: ["a red apple", "a green pear"], maxRetries: 0 });
    assert.equal(embeddings.length, 2);
    assert.equal(embeddings[1].length, DIMS);
  });
});

// Alone, after the others: greedy decoding is compared across two requests, and a batch's
// company may change a logit's last bits.
test("ai-sdk: generateText and streamText", async () => {
  const g = await generateText({ model: slm.chatModel(CHAT), prompt: "Say hi.", maxOutputTokens: 8, temperature: 0, maxRetries: 0 });
  assert.ok(g.text.length > 0);
  assert.ok(g.usage.outputTokens >= 1);
  const s = streamText({ model: slm.chatModel(CHAT), prompt: "Say hi.", maxOutputTokens: 8, temperature: 0, maxRetries: 0 });
  let text = "";
  for await (const piece of s.textStream) text += piece;
  assert.equal(text, g.text); // greedy: the stream says what the whole reply said
});
