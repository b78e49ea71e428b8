/**
 * PJRT layouts against two independent sources:
 * - pjrt.md: offsets and slot indices that worked against the real CUDA plugin (API 0.115);
 * - the C compiler: `offsetof` / `sizeof` / `*_STRUCT_SIZE` printed by a program compiled with
 *   `cc` against pjrt_c_api.h at PJRT_API_MINOR 114 (the header these layouts were written from).
 */
import { assertEquals } from "../assert.ts";
import type { StructLayout } from "../../ffi/layout.ts";
import * as api from "../../ffi/pjrt_api.ts";

Deno.test("PJRT_Api: version at 32/36, first slot at 40, 138 slots = struct_size 1144", () => {
  const versionAt = api.PJRT_Api_Head.offsetOf("pjrt_api_version");
  assertEquals(versionAt, 16);
  assertEquals(versionAt + api.PJRT_Api_Version.offsetOf("major_version"), 32);
  assertEquals(versionAt + api.PJRT_Api_Version.offsetOf("minor_version"), 36);
  assertEquals(api.PJRT_Api_Head.size, api.API_FIRST_SLOT_OFFSET);
  assertEquals(api.API_FIRST_SLOT_OFFSET + 8 * api.HEADER_SLOT_COUNT, 1144);
});

Deno.test("PJRT_Api slot indices match those used on the real plugin (pjrt.md)", () => {
  const checked: [api.SlotName, number][] = [
    ["PJRT_Error_Destroy", 0],
    ["PJRT_Error_Message", 1],
    ["PJRT_Error_GetCode", 2],
    ["PJRT_Plugin_Initialize", 3],
    ["PJRT_Plugin_Attributes", 4],
    ["PJRT_Event_Destroy", 5],
    ["PJRT_Event_Await", 8],
    ["PJRT_Client_Create", 10],
    ["PJRT_Client_Destroy", 11],
    ["PJRT_Client_PlatformName", 12],
    ["PJRT_Client_AddressableDevices", 16],
    ["PJRT_Client_Compile", 20],
    ["PJRT_Client_BufferFromHostBuffer", 22],
    ["PJRT_Executable_NumOutputs", 44],
    ["PJRT_LoadedExecutable_Destroy", 50],
    ["PJRT_LoadedExecutable_GetExecutable", 51],
    ["PJRT_LoadedExecutable_Execute", 55],
    ["PJRT_Buffer_Destroy", 58],
    ["PJRT_Buffer_ToHostBuffer", 70],
  ];
  for (const [slot, index] of checked) assertEquals(api.SLOTS[slot], index, slot);
  assertEquals(api.slotOffset("PJRT_Client_Create"), 120);
  assertEquals(api.apiSizeNeededFor("PJRT_Buffer_ToHostBuffer"), 40 + 71 * 8);
});

Deno.test("args offsets match those used on the real plugin (pjrt.md)", () => {
  expectOffsets(api.PJRT_Client_BufferFromHostBuffer_Args, {
    client: 16,
    data: 24,
    type: 32,
    dims: 40,
    num_dims: 48,
    byte_strides: 56,
    num_byte_strides: 64,
    host_buffer_semantics: 72,
    device: 80,
    memory: 88,
    device_layout: 96,
    done_with_host_buffer: 104,
    buffer: 112,
  });
  expectOffsets(api.PJRT_LoadedExecutable_Execute_Args, {
    executable: 16,
    options: 24,
    argument_lists: 32,
    num_devices: 40,
    num_args: 48,
    output_lists: 56,
    device_complete_events: 64,
    execute_device: 72,
  });
  expectOffsets(api.PJRT_ExecuteOptions, { launch_id: 48, non_donatable_input_indices: 56 });
  expectOffsets(api.PJRT_Buffer_ToHostBuffer_Args, {
    src: 16,
    host_layout: 24,
    dst: 32,
    dst_size: 40,
    event: 48,
  });
  expectOffsets(api.PJRT_NamedValue, {
    name: 16,
    name_size: 24,
    type: 32,
    value: 40,
    value_size: 48,
  });
  assertEquals(api.PJRT_NamedValue.size, 56);
  // The 0.115 plugin refused 72 bytes for Client_Create ("expected 88, got 72").
  assertEquals(api.PJRT_Client_Create_Args.structSize, 88);
  assertEquals(api.PJRT_Client_Create_Args.offsetOf("client"), 64);
});

Deno.test("args sizes match the C compiler on the 0.114 header", () => {
  // [layout, sizeof, PJRT_STRUCT_SIZE] as printed by cc against pjrt_c_api.h 0.114.
  const expected: [StructLayout, number, number][] = [
    [api.PJRT_Api_Version, 24, 24],
    [api.PJRT_Error_Destroy_Args, 24, 24],
    [api.PJRT_Error_Message_Args, 40, 40],
    [api.PJRT_Error_GetCode_Args, 32, 28],
    [api.PJRT_NamedValue, 56, 56],
    [api.PJRT_Plugin_Initialize_Args, 16, 16],
    [api.PJRT_Plugin_Attributes_Args, 32, 32],
    [api.PJRT_Event_Destroy_Args, 24, 24],
    [api.PJRT_Event_IsReady_Args, 32, 25],
    [api.PJRT_Event_Await_Args, 24, 24],
    [api.PJRT_Event_Error_Args, 24, 24],
    [api.PJRT_Client_Create_Args, 88, 88],
    [api.PJRT_KeyValueGetCallback_Args, 80, 80],
    [api.PJRT_KeyValueTryGetCallback_Args, 72, 72],
    [api.PJRT_KeyValuePutCallback_Args, 64, 64],
    [api.PJRT_Client_Destroy_Args, 24, 24],
    [api.PJRT_Client_PlatformName_Args, 40, 40],
    [api.PJRT_Client_PlatformVersion_Args, 40, 40],
    [api.PJRT_Client_ProcessIndex_Args, 32, 28],
    [api.PJRT_Client_Devices_Args, 40, 40],
    [api.PJRT_Client_AddressableDevices_Args, 40, 40],
    [api.PJRT_Program, 48, 48],
    [api.PJRT_Client_Compile_Args, 56, 56],
    [api.PJRT_Client_BufferFromHostBuffer_Args, 120, 120],
    [api.PJRT_DeviceDescription_Id_Args, 32, 28],
    [api.PJRT_DeviceDescription_ProcessIndex_Args, 32, 28],
    [api.PJRT_DeviceDescription_Kind_Args, 40, 40],
    [api.PJRT_DeviceDescription_DebugString_Args, 40, 40],
    [api.PJRT_Device_GetDescription_Args, 32, 32],
    [api.PJRT_Device_IsAddressable_Args, 32, 25],
    [api.PJRT_Executable_Destroy_Args, 24, 24],
    [api.PJRT_Executable_Name_Args, 40, 40],
    [api.PJRT_Executable_NumOutputs_Args, 32, 32],
    [api.PJRT_Executable_NumReplicas_Args, 32, 32],
    [api.PJRT_Executable_NumPartitions_Args, 32, 32],
    [api.PJRT_LoadedExecutable_Destroy_Args, 24, 24],
    [api.PJRT_LoadedExecutable_GetExecutable_Args, 32, 32],
    [api.PJRT_ExecuteOptions, 144, 144],
    [api.PJRT_LoadedExecutable_Execute_Args, 80, 80],
    [api.PJRT_Buffer_Destroy_Args, 24, 24],
    [api.PJRT_Buffer_ElementType_Args, 32, 28],
    [api.PJRT_Buffer_Dimensions_Args, 40, 40],
    [api.PJRT_Buffer_ToHostBuffer_Args, 56, 56],
    [api.PJRT_Buffer_ReadyEvent_Args, 32, 32],
  ];
  for (const [layout, size, structSize] of expected) {
    assertEquals([layout.size, layout.structSize], [size, structSize], layout.name);
  }
  // A few offsets printed by the same program.
  expectOffsets(api.PJRT_Error_Message_Args, { message: 24, message_size: 32 });
  expectOffsets(api.PJRT_Error_GetCode_Args, { code: 24 });
  expectOffsets(api.PJRT_Client_Create_Args, { kv_try_get_user_arg: 80 });
  expectOffsets(api.PJRT_Program, { format: 32 });
  // The KV callback args follow the header's field order; the fake plugin (cc) reads them too.
  expectOffsets(api.PJRT_KeyValueGetCallback_Args, {
    timeout_in_ms: 32,
    callback_error: 40,
    value: 56,
    value_deleter_callback: 72,
  });
  expectOffsets(api.PJRT_KeyValueTryGetCallback_Args, { callback_error: 32, value: 48 });
  expectOffsets(api.PJRT_KeyValuePutCallback_Args, { value: 32, callback_error: 48 });
  expectOffsets(api.PJRT_Client_Compile_Args, { compile_options: 32, executable: 48 });
  expectOffsets(api.PJRT_ExecuteOptions, {
    num_non_donatable_input_indices: 64,
    use_major_to_minor_data_layout_for_callbacks: 120,
    hlo_output_callbacks: 128,
  });
});

Deno.test("element type and enum codes match the header", () => {
  assertEquals(api.BufferType.PRED, 1);
  assertEquals(api.BufferType.S32, 4);
  assertEquals(api.BufferType.U8, 6);
  assertEquals(api.BufferType.U32, 8);
  assertEquals(api.BufferType.F32, 11);
  assertEquals(api.BufferType.BF16, 13);
  assertEquals(api.HostBufferSemantics.ImmutableUntilTransferCompletes, 1);
  assertEquals(api.NamedValueType.Bool, 4);
  assertEquals(api.ERROR_CODE_NAMES[3], "INVALID_ARGUMENT");
});

function expectOffsets(layout: StructLayout, offsets: Record<string, number>): void {
  for (const [field, offset] of Object.entries(offsets)) {
    assertEquals(layout.offsetOf(field), offset, `${layout.name}.${field}`);
  }
}
