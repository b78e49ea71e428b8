import { redact, redactValue, secretValues } from "../../lib/config/redact.ts";
import { assertEquals } from "../assert.ts";

const env = {
  HF_TOKEN: "hf_abcdefghijklmnopqrstuvwxyz0123",
  WANDB_API_KEY: "0123456789abcdef0123456789abcdef01234567",
  MY_SERVICE_TOKEN: "svc-secret-value",
  GOOGLE_OAUTH_ACCESS_TOKEN: "ya29.a0AfH6SMBexample",
  SHORT_TOKEN: "abc",
  PATH: "/usr/bin:/bin",
  HOME: "/root",
};

Deno.test("redact: secret variables' values become references to the variable", () => {
  assertEquals(
    redact(`pipe:curl -H 'Authorization: Bearer ${env.HF_TOKEN}' https://hub/x.tar`, env),
    "pipe:curl -H 'Authorization: Bearer ${HF_TOKEN}' https://hub/x.tar",
  );
  assertEquals(redact(`wandb key ${env.WANDB_API_KEY}.`, env), "wandb key ${WANDB_API_KEY}.");
  assertEquals(redact(`x=${env.MY_SERVICE_TOKEN}`, env), "x=${MY_SERVICE_TOKEN}");
  assertEquals(
    redact(`gcs ${env.GOOGLE_OAUTH_ACCESS_TOKEN}`, env),
    "gcs ${GOOGLE_OAUTH_ACCESS_TOKEN}",
  );
  // Ordinary variables and too-short values are left alone.
  assertEquals(redact("/usr/bin:/bin and /root and abc", env), "/usr/bin:/bin and /root and abc");
  assertEquals(secretValues(env).map(([k]) => k).sort(), [
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "HF_TOKEN",
    "MY_SERVICE_TOKEN",
    "WANDB_API_KEY",
  ]);
});

Deno.test("redact: unknown secrets by their shape: Authorization, Bearer, hf_, URLs, keys", () => {
  const none = {};
  assertEquals(
    redact("curl -H 'Authorization: Bearer hf_unknownunknownunknown12' u", none),
    "curl -H 'Authorization: Bearer ***' u",
  );
  assertEquals(
    redact('{"authorization": "Basic dXNlcjpwdw=="}', none),
    '{"authorization": "Basic ***"}',
  );
  assertEquals(redact("authorization=sekrit123;", none), "authorization=***;");
  assertEquals(redact("token hf_abcdefghijklmnopqrstu here", none), "token hf_*** here");
  assertEquals(redact("got Bearer abcdefgh12345678 back", none), "got Bearer *** back");
  assertEquals(
    redact("https://user:pa55word@host/o?X-Goog-Signature=abc123&alt=media&token=t0k", none),
    "https://user:***@host/o?X-Goog-Signature=***&alt=media&token=***",
  );
  assertEquals(
    redact(
      '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n"}',
      none,
    ),
    '{"private_key": "***"}',
  );
  // References are not secrets: they stay, so that a saved config expands them again.
  for (const kept of ["Authorization: Bearer $HF_TOKEN", "Authorization: Bearer ${HF_TOKEN}"]) {
    assertEquals(redact(kept, none), kept);
  }
});

Deno.test("redactValue: every string of a JSON-like value", () => {
  assertEquals(
    redactValue({ a: [`t ${env.HF_TOKEN}`, 1], b: { c: "Bearer abcdefghijkl" }, d: null }, env),
    { a: ["t ${HF_TOKEN}", 1], b: { c: "Bearer ***" }, d: null },
  );
});
