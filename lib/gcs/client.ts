/**
 * The Cloud Storage client (`@google-cloud/storage`), one per endpoint and thread, shared by shard
 * reading (lib/data), checkpoints (lib/checkpoint) and prepare-imagenet. Against an emulator or a
 * test server (an endpoint from `gcsEndpoint`) no credentials are used.
 */
import { Storage } from "@google-cloud/storage";

const clients = new Map<string, Storage>();

/** The client for `endpoint` (undefined: Google's, with the environment's credentials). */
export function gcsClient(endpoint: string | undefined): Storage {
  let client = clients.get(endpoint ?? "");
  if (!client) {
    if (endpoint) {
      client = new Storage({ apiEndpoint: endpoint, projectId: "emulator" });
      // The client takes apiEndpoint as its JSON-API base without /storage/v1, but builds upload
      // URLs from the host: both are set explicitly.
      (client as unknown as { baseUrl: string }).baseUrl = `${endpoint}/storage/v1`;
    } else {
      client = new Storage();
    }
    clients.set(endpoint ?? "", client);
  }
  return client;
}

/** The authorization headers the client would send (none against an emulator). */
export async function gcsAuthHeaders(client: Storage): Promise<Record<string, string>> {
  const h: unknown = await client.authClient.getRequestHeaders();
  if (h instanceof Headers) return Object.fromEntries(h.entries());
  return (h ?? {}) as Record<string, string>;
}
