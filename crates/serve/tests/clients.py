"""The real `openai` and `ollama` Python clients against a running `minibar serve`.

Usage: clients.py BASE_URL MODEL PROMPT. Asserts what the clients must see and prints, as
JSON, the greedy replies the Rust test compares with single-sequence generation.
"""

import json
import sys
from typing import Literal

import ollama
import openai
import pydantic

base, model, prompt = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
messages = [{"role": "user", "content": prompt}]

# Models: the served one first.
ids = [m.id for m in client.models.list()]
assert ids[0] == model, ids

# Chat, non-streaming, greedy, with usage.
r = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=24)
out["chat"] = r.choices[0].message.content
assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 24, r.usage
assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

# Chat, streaming, with usage at the end.
text, usage = "", None
for chunk in client.chat.completions.create(
    model=model, messages=messages, temperature=0, max_tokens=24, stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage
out["chat_stream"] = text
assert usage is not None and usage.completion_tokens == r.usage.completion_tokens, usage

# Stop strings end the reply before them.
words = out["chat"].split()
if len(words) > 2:
    r = client.chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=24, stop=[words[2]]
    )
    assert words[2] not in r.choices[0].message.content, r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"

# Seeds make sampling reproducible.
seeded = dict(model=model, messages=messages, temperature=1.0, top_p=0.9, seed=42, max_tokens=16)
a = client.chat.completions.create(**seeded).choices[0].message.content
b = client.chat.completions.create(**seeded).choices[0].message.content
assert a == b, (a, b)

# Completions: raw text.
r = client.completions.create(model=model, prompt="The capital of France is", temperature=0, max_tokens=8)
out["completion"] = r.choices[0].text
assert r.choices[0].finish_reason in ("stop", "length")

# Errors arrive as the client's typed exceptions.
try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    raise AssertionError("an unknown model was accepted")
except openai.NotFoundError:
    pass
try:
    client.chat.completions.create(model=model, messages=[])
    raise AssertionError("empty messages were accepted")
except openai.BadRequestError:
    pass

# Tools. SmolLM2's template has no tools, so the server describes them in the system message
# (Qwen's instructions) and writes earlier calls as <tool_call> text; a 135M model without tool
# training then follows the pattern of the history: questions each answered by a call (a
# history with tool results makes it write results instead). Its next call comes back parsed.
tools = [{"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
def asked(city, n):
    return [{"role": "user", "content": f"Weather in {city}?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": f"call0000{n}",
             "type": "function", "function": {"name": "get_weather",
                                              "arguments": json.dumps({"city": city})}}]}]
history = asked("Paris", 1) + asked("Rome", 2) + [{"role": "user", "content": "Weather in London?"}]
r = client.chat.completions.create(model=model, messages=history, tools=tools, temperature=0,
                                   max_tokens=40)
choice = r.choices[0]
assert choice.finish_reason == "tool_calls", choice
assert choice.message.content is None, choice.message
(call,) = choice.message.tool_calls
assert call.type == "function" and call.function.name == "get_weather", call
assert json.loads(call.function.arguments) == {"city": "London"}, call.function.arguments
assert len(call.id) == 9 and call.id.isalnum(), call.id
out["tool_call"] = {"name": call.function.name, "arguments": json.loads(call.function.arguments)}
# Streamed: the same call, in one delta with its index, and the same finish reason.
calls, finish = [], None
for chunk in client.chat.completions.create(model=model, messages=history, tools=tools,
                                            temperature=0, max_tokens=40, stream=True):
    if not chunk.choices:
        continue
    for c in chunk.choices[0].delta.tool_calls or []:
        calls.append(c)
    finish = chunk.choices[0].finish_reason or finish
assert finish == "tool_calls" and len(calls) == 1 and calls[0].index == 0, (finish, calls)
assert calls[0].function.name == "get_weather", calls
assert json.loads(calls[0].function.arguments) == {"city": "London"}, calls
# tool_choice "none": no tools offered, no calls parsed (the <tool_call> text stays content).
r = client.chat.completions.create(model=model, messages=history, tools=tools,
                                   tool_choice="none", temperature=0, max_tokens=8)
assert not r.choices[0].message.tool_calls and r.choices[0].finish_reason != "tool_calls", r

# Forced calls: a named function, or "required" (any offered one). The reply starts inside
# the call and its arguments are constrained to a JSON object, so even a question the model
# would answer in prose comes back as a call, and the server closes it.
time_tool = {"type": "function", "function": {
    "name": "get_time", "description": "The current time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
def forced(messages, choice, stream):
    kw = dict(model=model, messages=messages, tools=tools + [time_tool], tool_choice=choice,
              temperature=0, max_tokens=40)
    if not stream:
        c = client.chat.completions.create(**kw).choices[0]
        assert c.finish_reason == "tool_calls" and c.message.content is None, c
        (call,) = c.message.tool_calls
        assert len(call.id) == 9 and call.id.isalnum(), call.id
        return call.function.name, json.loads(call.function.arguments)
    calls, finish = [], None
    for chunk in client.chat.completions.create(stream=True, **kw):
        if chunk.choices:
            calls += chunk.choices[0].delta.tool_calls or []
            finish = chunk.choices[0].finish_reason or finish
            assert not chunk.choices[0].delta.content, chunk
    assert finish == "tool_calls" and len(calls) == 1 and calls[0].index == 0, (finish, calls)
    return calls[0].function.name, json.loads(calls[0].function.arguments)
for stream in (False, True):
    named = {"type": "function", "function": {"name": "get_time"}}
    name, args = forced(messages, named, stream)
    assert name == "get_time" and isinstance(args, dict), (name, args)
    name, args = forced(history, "required", stream)
    assert name in ("get_weather", "get_time") and isinstance(args, dict), (name, args)
    out["forced_call" + ("_stream" if stream else "")] = {"name": name, "arguments": args}
assert out["forced_call"] == out["forced_call_stream"], out
try:
    client.chat.completions.create(model=model, messages=messages, tools=tools,
                                   tool_choice={"type": "function",
                                                "function": {"name": "get_time"}})
    raise AssertionError("a function not offered was forced")
except openai.BadRequestError as e:
    assert "get_time" in e.message, e.message

# Ollama's chat takes the same tools; calls carry arguments as objects and no ids.
o = ollama.Client(host=base)
ollama_history = []
for m in history:
    if m.get("tool_calls"):
        m = {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": json.loads(
                m["tool_calls"][0]["function"]["arguments"])}}]}
    ollama_history.append(m)
resp = o.chat(model=model, messages=ollama_history, tools=tools,
              options={"temperature": 0, "num_predict": 40})
(ocall,) = resp.message.tool_calls
assert ocall.function.name == "get_weather", ocall
assert dict(ocall.function.arguments) == {"city": "London"}, ocall

# JSON mode: generation is constrained to one JSON object, which the client gets as is.
json_messages = [{"role": "user", "content":
                  'Return a JSON object with the key "city" set to the capital of France.'}]
r = client.chat.completions.create(model=model, temperature=0, max_tokens=40,
                                   response_format={"type": "json_object"}, messages=json_messages)
assert r.choices[0].finish_reason == "stop", r.choices[0]
out["json"] = json.loads(r.choices[0].message.content)
assert out["json"] == {"city": "Paris"}, out["json"]
streamed = "".join(
    c.choices[0].delta.content or ""
    for c in client.chat.completions.create(
        model=model, temperature=0, max_tokens=40, response_format={"type": "json_object"},
        messages=json_messages, stream=True)
    if c.choices)
assert streamed == r.choices[0].message.content, (streamed, r.choices[0].message.content)
g = o.generate(model=model, prompt=json_messages[0]["content"], format="json",
               options={"temperature": 0, "num_predict": 40})
assert json.loads(g.response) == {"city": "Paris"}, g.response

# Schema outputs: generation follows the schema (llguidance), so even a 135M model's reply
# validates; the openai client sends the pydantic model as a strict json_schema and parses it.
class Place(pydantic.BaseModel):
    city: str = pydantic.Field(max_length=24)
    country: Literal["France", "Germany", "Spain"]
    founded: int = pydantic.Field(ge=0, le=3000)


def place(text):
    try:
        return Place.model_validate_json(text)
    except pydantic.ValidationError as e:
        raise AssertionError(f"{text!r}: {e}") from e


place_messages = [{"role": "user", "content": "Describe the capital of France."}]
parse = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse
r = parse(model=model, temperature=0, max_tokens=60, messages=place_messages,
          response_format=Place)
assert r.choices[0].finish_reason == "stop", r.choices[0]
assert isinstance(r.choices[0].message.parsed, Place), r.choices[0].message
schema_format = {"type": "json_schema",
                 "json_schema": {"name": "Place", "schema": Place.model_json_schema()}}
streamed = "".join(
    c.choices[0].delta.content or ""
    for c in client.chat.completions.create(
        model=model, temperature=0, max_tokens=60, response_format=schema_format,
        messages=place_messages, stream=True)
    if c.choices)
place(streamed)
for stream in (False, True):
    parts = o.chat(model=model, messages=place_messages, format=Place.model_json_schema(),
                   stream=stream, options={"temperature": 0, "num_predict": 60})
    content = "".join(p.message.content for p in ([parts] if not stream else parts))
    place(content)
g = o.generate(model=model, prompt=place_messages[0]["content"], format=Place.model_json_schema(),
               options={"temperature": 0, "num_predict": 60})
place(g.response)
# A reply the length limit cuts comes as it is, as in JSON mode (not an error).
r = client.chat.completions.create(model=model, temperature=0, max_tokens=3,
                                   response_format=schema_format, messages=place_messages)
assert r.choices[0].finish_reason == "length", r.choices[0]
assert r.choices[0].message.content.lstrip().startswith("{"), r.choices[0].message
bad_schema = {"type": "object", "properties": {"city": {"type": "town"}}}
try:
    client.chat.completions.create(
        model=model, messages=place_messages,
        response_format={"type": "json_schema", "json_schema": {"name": "bad", "schema": bad_schema}})
    raise AssertionError("a malformed schema was accepted")
except openai.BadRequestError as e:
    assert "town" in str(e), e
try:
    o.chat(model=model, messages=place_messages, format=bad_schema)
    raise AssertionError("a malformed schema was accepted")
except ollama.ResponseError as e:
    assert e.status_code == 400 and "town" in e.error, e

# Ollama: chat (streaming), generate, list.
o = ollama.Client(host=base)
text = ""
last = None
for part in o.chat(model=model, messages=messages, stream=True,
                   options={"temperature": 0, "num_predict": 24}):
    text += part.message.content or ""
    last = part
assert last.done and last.eval_count > 0, last
out["ollama_chat"] = text
g = o.generate(model=model, prompt=prompt, options={"temperature": 0, "num_predict": 24})
out["ollama_generate"] = g.response
assert isinstance(o.list().models, list)
try:
    o.chat(model="no-such-model", messages=messages)
    raise AssertionError("an unknown model was accepted")
except ollama.ResponseError as e:
    assert e.status_code == 404, e

print(json.dumps(out))
