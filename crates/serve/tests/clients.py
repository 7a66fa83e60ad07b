"""The real `openai` and `ollama` Python clients against a running `minibar serve`.

Usage: clients.py BASE_URL MODEL PROMPT. Asserts what the clients must see and prints, as
JSON, the greedy replies the Rust test compares with single-sequence generation.
"""

import json
import sys

import ollama
import openai

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
