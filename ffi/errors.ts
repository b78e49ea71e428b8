import { ERROR_CODE_NAMES } from "./pjrt_api.ts";

/** A `PJRT_Error` returned by a plugin, with its status code and the plugin's own message. */
export class PjrtError extends Error {
  /** `PJRT_Error_Code` (absl status code), e.g. 3 = INVALID_ARGUMENT. */
  readonly code: number;
  /** The code's name, e.g. "INVALID_ARGUMENT". */
  readonly codeName: string;
  /** The message exactly as the plugin gave it. */
  readonly pluginMessage: string;
  /** The PJRT call (and what it was doing) that failed, e.g. "PJRT_Client_Compile". */
  readonly call: string;

  constructor(call: string, code: number, pluginMessage: string) {
    const codeName = ERROR_CODE_NAMES[code] ?? `code ${code}`;
    super(`${call} failed (${codeName}): ${pluginMessage}`);
    this.name = "PjrtError";
    this.code = code;
    this.codeName = codeName;
    this.pluginMessage = pluginMessage;
    this.call = call;
  }
}

/** Raised when a plugin cannot be used at all: not loadable, not PJRT, wrong API, slot missing. */
export class PjrtPluginError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PjrtPluginError";
  }
}
