/**
 * The parts of the PJRT C API (`xla/pjrt/c/pjrt_c_api.h`) this project calls: `PJRT_Api` slot
 * indices, args-struct layouts and enum codes.
 *
 * Written from the header at PJRT_API_MAJOR 0 / PJRT_API_MINOR 114 (openxla/xla main, July
 * 2026; no 0.115 header was to be had). The CUDA plugin we run reports 0.115 with 138 slots, as
 * many as this header has. Plugins refuse a `struct_size` smaller than their own but accept a
 * larger one, so each top-level args struct is sent with `ARGS_PADDING` zero bytes past its end
 * and a `struct_size` that counts them: a plugin whose header grew a struct after 0.114 still
 * finds it large enough and reads zeros ("not set") for fields we do not know. (Checked on the
 * 0.115 CUDA plugin with 0.81 layouts plus 64 bytes.)
 */
import { defineStruct, type FieldType, type StructLayout } from "./layout.ts";

/** Header version the layouts below were written from. */
export const PJRT_HEADER_VERSION = { major: 0, minor: 114 } as const;

/** Zero bytes sent after each top-level args struct and counted in its `struct_size`. */
export const ARGS_PADDING = 64;

/** Byte offset of the first function pointer in `PJRT_Api` (after the version block). */
export const API_FIRST_SLOT_OFFSET = 40;

/** Number of function pointers in `PJRT_Api` at the header version above. */
export const HEADER_SLOT_COUNT = 138;

/** Index of each `PJRT_Api` function pointer we use, in the header's order (0 = first slot). */
export const SLOTS = {
  PJRT_Error_Destroy: 0,
  PJRT_Error_Message: 1,
  PJRT_Error_GetCode: 2,
  PJRT_Plugin_Initialize: 3,
  PJRT_Plugin_Attributes: 4,
  PJRT_Event_Destroy: 5,
  PJRT_Event_IsReady: 6,
  PJRT_Event_Error: 7,
  PJRT_Event_Await: 8,
  PJRT_Client_Create: 10,
  PJRT_Client_Destroy: 11,
  PJRT_Client_PlatformName: 12,
  PJRT_Client_ProcessIndex: 13,
  PJRT_Client_PlatformVersion: 14,
  PJRT_Client_Devices: 15,
  PJRT_Client_AddressableDevices: 16,
  PJRT_Client_Compile: 20,
  PJRT_Client_BufferFromHostBuffer: 22,
  PJRT_DeviceDescription_Id: 23,
  PJRT_DeviceDescription_ProcessIndex: 24,
  PJRT_DeviceDescription_Kind: 26,
  PJRT_DeviceDescription_DebugString: 27,
  PJRT_Device_GetDescription: 29,
  PJRT_Device_IsAddressable: 30,
  PJRT_Executable_Destroy: 40,
  PJRT_Executable_Name: 41,
  PJRT_Executable_NumReplicas: 42,
  PJRT_Executable_NumPartitions: 43,
  PJRT_Executable_NumOutputs: 44,
  PJRT_LoadedExecutable_Destroy: 50,
  PJRT_LoadedExecutable_GetExecutable: 51,
  PJRT_LoadedExecutable_AddressableDevices: 52,
  PJRT_LoadedExecutable_Execute: 55,
  PJRT_Buffer_Destroy: 58,
  PJRT_Buffer_ElementType: 59,
  PJRT_Buffer_Dimensions: 60,
  PJRT_Buffer_ToHostBuffer: 70,
  PJRT_Buffer_ReadyEvent: 72,
} as const;

export type SlotName = keyof typeof SLOTS;

/** Byte offset of a slot's function pointer inside `PJRT_Api`. */
export function slotOffset(slot: SlotName): number {
  return API_FIRST_SLOT_OFFSET + 8 * SLOTS[slot];
}

/** The smallest `PJRT_Api.struct_size` that still contains `slot`. */
export function apiSizeNeededFor(slot: SlotName): number {
  return slotOffset(slot) + 8;
}

// ---------------------------------------------------------------------------------------------
// Struct layouts. Every args struct starts with `size_t struct_size` and
// `PJRT_Extension_Base* extension_start`.

export const PJRT_Api_Version = defineStruct("PJRT_Api_Version", [
  ["struct_size", "size_t"],
  ["extension_start", "ptr"],
  ["major_version", "i32"],
  ["minor_version", "i32"],
]);

/** The head of `PJRT_Api`; function pointers follow at `API_FIRST_SLOT_OFFSET`. */
export const PJRT_Api_Head = defineStruct("PJRT_Api (head)", [
  ["struct_size", "size_t"],
  ["extension_start", "ptr"],
  ["pjrt_api_version", PJRT_Api_Version],
]);

export const PJRT_NamedValue = defineStruct("PJRT_NamedValue", [
  ["struct_size", "size_t"],
  ["extension_start", "ptr"],
  ["name", "ptr"],
  ["name_size", "size_t"],
  ["type", "enum"],
  // union { const char* string_value; int64_t int64_value; const int64_t* int64_array_value;
  //         float float_value; bool bool_value; }
  ["value", { union: ["ptr", "i64", "ptr", "f32", "bool"] }],
  ["value_size", "size_t"],
]);

export const PJRT_Error_Destroy_Args = args("PJRT_Error_Destroy_Args", [["error", "ptr"]]);
export const PJRT_Error_Message_Args = args("PJRT_Error_Message_Args", [
  ["error", "ptr"],
  ["message", "ptr"],
  ["message_size", "size_t"],
]);
export const PJRT_Error_GetCode_Args = args("PJRT_Error_GetCode_Args", [
  ["error", "ptr"],
  ["code", "enum"],
]);

export const PJRT_Plugin_Initialize_Args = args("PJRT_Plugin_Initialize_Args", []);
export const PJRT_Plugin_Attributes_Args = args("PJRT_Plugin_Attributes_Args", [
  ["attributes", "ptr"],
  ["num_attributes", "size_t"],
]);

export const PJRT_Event_Destroy_Args = args("PJRT_Event_Destroy_Args", [["event", "ptr"]]);
export const PJRT_Event_IsReady_Args = args("PJRT_Event_IsReady_Args", [
  ["event", "ptr"],
  ["is_ready", "bool"],
]);
export const PJRT_Event_Error_Args = args("PJRT_Event_Error_Args", [["event", "ptr"]]);
export const PJRT_Event_Await_Args = args("PJRT_Event_Await_Args", [["event", "ptr"]]);

export const PJRT_Client_Create_Args = args("PJRT_Client_Create_Args", [
  ["create_options", "ptr"],
  ["num_options", "size_t"],
  ["kv_get_callback", "ptr"],
  ["kv_get_user_arg", "ptr"],
  ["kv_put_callback", "ptr"],
  ["kv_put_user_arg", "ptr"],
  ["client", "ptr"], // out
  ["kv_try_get_callback", "ptr"],
  ["kv_try_get_user_arg", "ptr"],
]);
// Key-value store callbacks given to PJRT_Client_Create; the plugin fills these and calls us.
// `callback_error` points at a `PJRT_CallbackError` function pointer that builds a PJRT_Error.
export const PJRT_KeyValueGetCallback_Args = args("PJRT_KeyValueGetCallback_Args", [
  ["key", "ptr"],
  ["key_size", "size_t"],
  ["timeout_in_ms", "i32"],
  ["callback_error", "ptr"],
  ["user_arg", "ptr"],
  ["value", "ptr"], // out
  ["value_size", "size_t"], // out
  ["value_deleter_callback", "ptr"], // out: the plugin copies `value`, then calls this on it
]);
export const PJRT_KeyValueTryGetCallback_Args = args("PJRT_KeyValueTryGetCallback_Args", [
  ["key", "ptr"],
  ["key_size", "size_t"],
  ["callback_error", "ptr"],
  ["user_arg", "ptr"],
  ["value", "ptr"], // out
  ["value_size", "size_t"], // out
  ["value_deleter_callback", "ptr"], // out
]);
export const PJRT_KeyValuePutCallback_Args = args("PJRT_KeyValuePutCallback_Args", [
  ["key", "ptr"],
  ["key_size", "size_t"],
  ["value", "ptr"], // only valid during the call
  ["value_size", "size_t"],
  ["callback_error", "ptr"],
  ["user_arg", "ptr"],
]);
export const PJRT_Client_Destroy_Args = args("PJRT_Client_Destroy_Args", [["client", "ptr"]]);
export const PJRT_Client_PlatformName_Args = args("PJRT_Client_PlatformName_Args", [
  ["client", "ptr"],
  ["platform_name", "ptr"],
  ["platform_name_size", "size_t"],
]);
export const PJRT_Client_ProcessIndex_Args = args("PJRT_Client_ProcessIndex_Args", [
  ["client", "ptr"],
  ["process_index", "i32"],
]);
export const PJRT_Client_PlatformVersion_Args = args("PJRT_Client_PlatformVersion_Args", [
  ["client", "ptr"],
  ["platform_version", "ptr"],
  ["platform_version_size", "size_t"],
]);
export const PJRT_Client_Devices_Args = args("PJRT_Client_Devices_Args", [
  ["client", "ptr"],
  ["devices", "ptr"],
  ["num_devices", "size_t"],
]);
export const PJRT_Client_AddressableDevices_Args = args("PJRT_Client_AddressableDevices_Args", [
  ["client", "ptr"],
  ["addressable_devices", "ptr"],
  ["num_addressable_devices", "size_t"],
]);

export const PJRT_Program = args("PJRT_Program", [
  ["code", "ptr"],
  ["code_size", "size_t"],
  ["format", "ptr"],
  ["format_size", "size_t"],
]);
export const PJRT_Client_Compile_Args = args("PJRT_Client_Compile_Args", [
  ["client", "ptr"],
  ["program", "ptr"],
  ["compile_options", "ptr"],
  ["compile_options_size", "size_t"],
  ["executable", "ptr"], // out
]);

export const PJRT_Client_BufferFromHostBuffer_Args = args(
  "PJRT_Client_BufferFromHostBuffer_Args",
  [
    ["client", "ptr"],
    ["data", "ptr"],
    ["type", "enum"],
    ["dims", "ptr"],
    ["num_dims", "size_t"],
    ["byte_strides", "ptr"],
    ["num_byte_strides", "size_t"],
    ["host_buffer_semantics", "enum"],
    ["device", "ptr"],
    ["memory", "ptr"],
    ["device_layout", "ptr"],
    ["done_with_host_buffer", "ptr"], // out
    ["buffer", "ptr"], // out
  ],
);

export const PJRT_DeviceDescription_Id_Args = args("PJRT_DeviceDescription_Id_Args", [
  ["device_description", "ptr"],
  ["id", "i32"],
]);
export const PJRT_DeviceDescription_ProcessIndex_Args = args(
  "PJRT_DeviceDescription_ProcessIndex_Args",
  [["device_description", "ptr"], ["process_index", "i32"]],
);
export const PJRT_DeviceDescription_Kind_Args = args("PJRT_DeviceDescription_Kind_Args", [
  ["device_description", "ptr"],
  ["device_kind", "ptr"],
  ["device_kind_size", "size_t"],
]);
export const PJRT_DeviceDescription_DebugString_Args = args(
  "PJRT_DeviceDescription_DebugString_Args",
  [["device_description", "ptr"], ["debug_string", "ptr"], ["debug_string_size", "size_t"]],
);
export const PJRT_Device_GetDescription_Args = args("PJRT_Device_GetDescription_Args", [
  ["device", "ptr"],
  ["device_description", "ptr"],
]);
export const PJRT_Device_IsAddressable_Args = args("PJRT_Device_IsAddressable_Args", [
  ["device", "ptr"],
  ["is_addressable", "bool"],
]);

export const PJRT_Executable_Destroy_Args = args("PJRT_Executable_Destroy_Args", [
  ["executable", "ptr"],
]);
export const PJRT_Executable_Name_Args = args("PJRT_Executable_Name_Args", [
  ["executable", "ptr"],
  ["executable_name", "ptr"],
  ["executable_name_size", "size_t"],
]);
export const PJRT_Executable_NumReplicas_Args = args("PJRT_Executable_NumReplicas_Args", [
  ["executable", "ptr"],
  ["num_replicas", "size_t"],
]);
export const PJRT_Executable_NumPartitions_Args = args("PJRT_Executable_NumPartitions_Args", [
  ["executable", "ptr"],
  ["num_partitions", "size_t"],
]);
export const PJRT_Executable_NumOutputs_Args = args("PJRT_Executable_NumOutputs_Args", [
  ["executable", "ptr"],
  ["num_outputs", "size_t"],
]);
export const PJRT_LoadedExecutable_Destroy_Args = args("PJRT_LoadedExecutable_Destroy_Args", [
  ["executable", "ptr"],
]);
export const PJRT_LoadedExecutable_GetExecutable_Args = args(
  "PJRT_LoadedExecutable_GetExecutable_Args",
  [["loaded_executable", "ptr"], ["executable", "ptr"]],
);

export const PJRT_LoadedExecutable_AddressableDevices_Args = args(
  "PJRT_LoadedExecutable_AddressableDevices_Args",
  [["executable", "ptr"], ["addressable_devices", "ptr"], ["num_addressable_devices", "size_t"]],
);

export const PJRT_ExecuteOptions = args("PJRT_ExecuteOptions", [
  ["send_callbacks", "ptr"],
  ["recv_callbacks", "ptr"],
  ["num_send_ops", "size_t"],
  ["num_recv_ops", "size_t"],
  ["launch_id", "i32"],
  ["non_donatable_input_indices", "ptr"],
  ["num_non_donatable_input_indices", "size_t"],
  ["context", "ptr"],
  ["call_location", "ptr"],
  ["num_tasks", "size_t"],
  ["task_ids", "ptr"],
  ["incarnation_ids", "ptr"],
  ["multi_slice_config", "ptr"],
  ["use_major_to_minor_data_layout_for_callbacks", "bool"],
  ["hlo_output_callbacks", "ptr"],
  ["num_hlo_output_callbacks", "size_t"],
]);
export const PJRT_LoadedExecutable_Execute_Args = args("PJRT_LoadedExecutable_Execute_Args", [
  ["executable", "ptr"],
  ["options", "ptr"],
  ["argument_lists", "ptr"],
  ["num_devices", "size_t"],
  ["num_args", "size_t"],
  ["output_lists", "ptr"],
  ["device_complete_events", "ptr"],
  ["execute_device", "ptr"],
]);

export const PJRT_Buffer_Destroy_Args = args("PJRT_Buffer_Destroy_Args", [["buffer", "ptr"]]);
export const PJRT_Buffer_ElementType_Args = args("PJRT_Buffer_ElementType_Args", [
  ["buffer", "ptr"],
  ["type", "enum"],
]);
export const PJRT_Buffer_Dimensions_Args = args("PJRT_Buffer_Dimensions_Args", [
  ["buffer", "ptr"],
  ["dims", "ptr"],
  ["num_dims", "size_t"],
]);
export const PJRT_Buffer_ToHostBuffer_Args = args("PJRT_Buffer_ToHostBuffer_Args", [
  ["src", "ptr"],
  ["host_layout", "ptr"],
  ["dst", "ptr"],
  ["dst_size", "size_t"],
  ["event", "ptr"], // out
]);
export const PJRT_Buffer_ReadyEvent_Args = args("PJRT_Buffer_ReadyEvent_Args", [
  ["buffer", "ptr"],
  ["event", "ptr"],
]);

// ---------------------------------------------------------------------------------------------
// Enums.

/** `PJRT_Error_Code` (absl status codes): `ErrorCode.NOT_FOUND` is `PJRT_Error_Code_NOT_FOUND`. */
export const ErrorCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** The name of each `PJRT_Error_Code` value, e.g. 3 -> "INVALID_ARGUMENT". */
export const ERROR_CODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(ErrorCode).map(([name, code]) => [code, name]),
);

/** `PJRT_NamedValue_Type`. */
export const NamedValueType = { String: 0, Int64: 1, Int64List: 2, Float: 3, Bool: 4 } as const;

/** `PJRT_HostBufferSemantics`. */
export const HostBufferSemantics = {
  ImmutableOnlyDuringCall: 0,
  ImmutableUntilTransferCompletes: 1,
  ImmutableZeroCopy: 2,
  MutableZeroCopy: 3,
} as const;

/** `PJRT_Buffer_Type` codes for the element types the toolkit uses (and a few neighbours). */
export const BufferType = {
  INVALID: 0,
  PRED: 1,
  S8: 2,
  S16: 3,
  S32: 4,
  S64: 5,
  U8: 6,
  U16: 7,
  U32: 8,
  U64: 9,
  F16: 10,
  F32: 11,
  F64: 12,
  BF16: 13,
} as const;

/** Builds an args struct: `struct_size`, `extension_start`, then `fields`. */
function args(name: string, fields: [string, FieldType][]): StructLayout {
  return defineStruct(name, [["struct_size", "size_t"], ["extension_start", "ptr"], ...fields]);
}
