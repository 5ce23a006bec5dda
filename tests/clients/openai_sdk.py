"""The official `openai` Python SDK against OKCVM's /v1 (run by tests/openai_sdk.rs).

Usage: python openai_sdk.py <base-url>/v1 <token>. Prints one line per check and exits
non-zero at the first that fails.
"""

import sys

import openai

base_url, token = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=token, timeout=30)


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {message}")


models = client.models.list()
check([m.id for m in models.data] == ["okcvm-agent"], "models.list names the agent")

answer = client.chat.completions.create(
    model="okcvm-agent", messages=[{"role": "user", "content": "SDK-HELLO there"}]
)
check(answer.choices[0].message.content == "echo: SDK-HELLO there", "a plain completion")
check(answer.usage is not None and answer.usage.total_tokens > 0, "the answer carries usage")

stream = client.chat.completions.create(
    model="okcvm-agent",
    messages=[{"role": "user", "content": "SDK-STREAM please"}],
    stream=True,
    stream_options={"include_usage": True},
)
chunks = list(stream)
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
check(text == "echo: SDK-STREAM please", f"the streamed text ({text!r})")
last = chunks[-1]
check(last.choices == [] and last.usage is not None, "include_usage ends with a usage chunk")
check(last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens,
      "the usage adds up")
check(all(c.usage is None for c in chunks[:-1]), "only the last chunk carries usage")

try:
    client.chat.completions.create(
        model="okcvm-agent", messages=[{"role": "user", "content": "SDK-FAIL once"}]
    )
    check(False, "a failed turn raises")
except openai.APIStatusError as error:
    check(error.status_code == 502, f"a failed model call is 502 ({error.status_code})")
    check(error.code == "model_endpoint_failed", f"OpenAI's error envelope ({error.body})")

retried = client.chat.completions.create(
    model="okcvm-agent", messages=[{"role": "user", "content": "SDK-FAIL once"}]
)
check(retried.choices[0].message.content == "recovered", "sending it again works")

try:
    client.chat.completions.create(model="okcvm-agent", messages=[{"role": "system", "content": "x"}])
    check(False, "a request without a user message raises")
except openai.BadRequestError as error:
    check(error.code == "invalid_request", f"bad request envelope ({error.body})")

try:
    openai.OpenAI(base_url=base_url, api_key="okcvm_wrong", max_retries=0).models.list()
    check(False, "a wrong key raises")
except openai.AuthenticationError as error:
    check(error.status_code == 401, "a wrong key is 401")
print("PASS")
