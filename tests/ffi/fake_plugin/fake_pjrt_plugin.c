/*
 * A tiny fake PJRT plugin for the ffi tests (no accelerator needed). It implements the slots
 * the bindings call, with the same contracts as a real plugin: struct_size checks ("expected N,
 * got M"), caller-owned PJRT_Error objects, events that must be awaited and destroyed, buffers
 * that hold a copy of the host data. Its structs are declared here in C, so the C compiler (not
 * the TypeScript layout helper under test) decides their offsets.
 *
 * Programs: code containing "add" has one output, arg0 + arg1 (f32); anything else ("swap") has
 * two outputs, arg1 and arg0. Code containing "syntax error" fails to compile.
 *
 * Topology: 3 devices (ids 0 and 1 in this process 0, id 2 in process 1), or from the client
 * options fake_processes, fake_devices (per process) and fake_process_index (this process).
 * Execute runs on any number of this process's devices.
 *
 * Key-value rendezvous: with the option fake_kv_rendezvous = T (ms) and the kv callbacks set,
 * Client_Create does what the CUDA plugin does across hosts, from a thread of its own: it puts
 * "fake/node/<self>" (binary bytes), checks try_get (when given) on an absent and its own key,
 * then gets every other process's key with timeout T. Failure fails the create, with the
 * callback's error; fake_last_rendezvous() tells what happened. With fake_kv_on_execute = 1 as
 * well, each Execute first exchanges a "clique id" as NCCL does at a first collective: process 0
 * puts "fake/clique/<launch_id>", the others get it, from a thread of the plugin's.
 *
 * As XLA's helper does (pjrt_c_api_helpers.cc, ToCppKeyValueStore), the callback args are
 * built on the stack and only the fields it sets are set: `struct_size` is left 0 and the out
 * fields are garbage (0xa5 bytes), so a callback that returns success without filling the
 * value and its deleter is caught ("returned no value").
 *
 * Multi-process, as the CUDA plugin (pjrt_c_api_gpu_internal.cc): the options node_id and
 * num_nodes (int64; other types are refused, as are memory_fraction not a float, preallocate
 * not a bool) set the topology (num_nodes processes of fake_devices devices, this one node_id)
 * and, with num_nodes > 1, need the kv callbacks and do the rendezvous (timeout 30 s unless
 * fake_kv_rendezvous says otherwise). With fake_kv_on_execute the clique id is exchanged at
 * each executable's first Execute only, as XLA caches NCCL cliques.
 *
 * Other options: fake_permute_devices = 1 makes each executable report its addressable devices
 * (PJRT_LoadedExecutable_AddressableDevices) in reverse order, and Execute then expects the
 * argument lists in that order; fake_event_fail = 1 makes every event await to an error and
 * every Event_Destroy fail too. Buffer_ToHostBuffer writes the host bytes from a thread of its
 * own after it returns (as a real plugin's DMA does); the event's await waits for the write.
 *
 * Build variants: -DFAKE_SLOTS=N (function slots exposed), -DFAKE_MINOR=N (reported API
 * minor version), -DFAKE_NO_COMPILE (null PJRT_Client_Compile slot), -DFAKE_NV_EXTRA=N (N more
 * bytes at the end of PJRT_NamedValue, as a newer header might add: arrays of them step by the
 * plugin's own sizeof, in both directions).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FAKE_SLOTS
#define FAKE_SLOTS 138
#endif
#ifndef FAKE_MINOR
#define FAKE_MINOR 114
#endif

#define HEAD \
  size_t struct_size; \
  void* extension_start;
#define SIZE_UP_TO(type, field) (offsetof(type, field) + sizeof(((type*)0)->field))

typedef struct FakeError { int code; char message[512]; } FakeError;
typedef struct FakeEvent {
  int code; char message[256]; int delay_ms;
  bool has_writer; pthread_t writer; /* a D2H copy still being written after the call returned */
} FakeEvent;
typedef struct FakeBuffer {
  int type; int64_t dims[8]; size_t num_dims; unsigned char* data; size_t nbytes; int device;
  bool donated;
} FakeBuffer;
typedef struct FakeLoaded {
  bool add; char name[256]; bool launched; struct FakeDevice* devices[64]; size_t num_devices;
} FakeLoaded;
typedef struct FakeExecutable { FakeLoaded* loaded; } FakeExecutable;
typedef struct FakeDevice { int id; int process; bool addressable; char debug[64]; } FakeDevice;

static int live_objects = 0;
static int await_delay_ms = 0;
static char last_options[1024];
static char last_non_donatable[256];
static char last_donated[512];
static char last_rendezvous[512];
#define MAX_DEVICES 64
static FakeDevice devices[MAX_DEVICES];
static FakeDevice* all_devices[MAX_DEVICES];
static FakeDevice* addressable_devices[MAX_DEVICES];
static size_t num_all = 0, num_addressable = 0;
static int process_index = 0;
static int client_token;
static bool permute_devices = false;
static bool event_fail = false;

static void set_topology(int processes, int per_process, int self) {
  num_all = num_addressable = 0;
  process_index = self;
  for (int p = 0; p < processes; p++)
    for (int i = 0; i < per_process && num_all < MAX_DEVICES; i++) {
      FakeDevice* d = &devices[num_all];
      d->id = (int)num_all; d->process = p; d->addressable = p == self; d->debug[0] = 0;
      all_devices[num_all++] = d;
      if (d->addressable) addressable_devices[num_addressable++] = d;
    }
}

/* Queries for the tests (not part of PJRT). */
int fake_live_objects(void) { return live_objects; }
void fake_last_options(char* out, size_t n) { snprintf(out, n, "%s", last_options); }
void fake_last_non_donatable(char* out, size_t n) { snprintf(out, n, "%s", last_non_donatable); }
void fake_last_donated(char* out, size_t n) { snprintf(out, n, "%s", last_donated); }
void fake_last_rendezvous(char* out, size_t n) { snprintf(out, n, "%s", last_rendezvous); }

static FakeError* make_error(int code, const char* message) {
  FakeError* e = calloc(1, sizeof(FakeError));
  e->code = code;
  snprintf(e->message, sizeof e->message, "%s", message);
  live_objects++;
  return e;
}

static FakeEvent* make_event(void) {
  FakeEvent* ev = calloc(1, sizeof(FakeEvent));
  ev->delay_ms = await_delay_ms;
  if (event_fail) { ev->code = 13; snprintf(ev->message, sizeof ev->message, "fake event failed"); }
  live_objects++;
  return ev;
}

#define CHECK_SIZE(type, args, last)                                                   \
  do {                                                                                \
    size_t expected = SIZE_UP_TO(type, last);                                        \
    if ((args)->struct_size < expected) {                                            \
      char m[160];                                                                    \
      snprintf(m, sizeof m, "Unexpected %s size: expected %zu, got %zu", #type, expected, \
               (args)->struct_size);                                                  \
      return make_error(3, m);                                                        \
    }                                                                                 \
  } while (0)

/* ----------------------------------- errors ----------------------------------- */
typedef struct { HEAD void* error; } Error_Destroy_Args;
typedef struct { HEAD const void* error; const char* message; size_t message_size; } Error_Message_Args;
typedef struct { HEAD const void* error; int code; } Error_GetCode_Args;

static void Error_Destroy(Error_Destroy_Args* a) {
  if (a->error) { free(a->error); live_objects--; }
}
static void Error_Message(Error_Message_Args* a) {
  const FakeError* e = a->error;
  a->message = e->message;
  a->message_size = strlen(e->message);
}
static void* Error_GetCode(Error_GetCode_Args* a) {
  CHECK_SIZE(Error_GetCode_Args, a, code);
  a->code = ((const FakeError*)a->error)->code;
  return NULL;
}

/* ----------------------------------- plugin ----------------------------------- */
typedef struct {
  HEAD const char* name; size_t name_size; int type;
  union { const char* s; int64_t i; const int64_t* list; float f; bool b; } value;
  size_t value_size;
#ifdef FAKE_NV_EXTRA
  char extra[FAKE_NV_EXTRA];
#endif
} NamedValue;
typedef struct { HEAD } Plugin_Initialize_Args;
typedef struct { HEAD const NamedValue* attributes; size_t num_attributes; } Plugin_Attributes_Args;

static const int64_t stablehlo_version[3] = {1, 9, 3};
static NamedValue attributes[3] = {
    {sizeof(NamedValue), NULL, "xla_version", 11, 1, {.i = 42}, 1},
    {sizeof(NamedValue), NULL, "stablehlo_current_version", 25, 2, {.list = stablehlo_version}, 3},
    {sizeof(NamedValue), NULL, "fake_name", 9, 0, {.s = "fake-pjrt"}, 9},
};
/* PJRT_NamedValue_STRUCT_SIZE: the end of value_size, as the header computes it. */
#define NAMED_VALUE_STRUCT_SIZE SIZE_UP_TO(NamedValue, value_size)

static void* Plugin_Initialize(Plugin_Initialize_Args* a) {
  CHECK_SIZE(Plugin_Initialize_Args, a, extension_start);
  return NULL;
}
static void* Plugin_Attributes(Plugin_Attributes_Args* a) {
  CHECK_SIZE(Plugin_Attributes_Args, a, num_attributes);
  a->attributes = attributes;
  a->num_attributes = 3;
  return NULL;
}

/* ----------------------------------- events ----------------------------------- */
typedef struct { HEAD FakeEvent* event; } Event_Args;

static void join_writer(FakeEvent* ev) {
  if (ev->has_writer) { pthread_join(ev->writer, NULL); ev->has_writer = false; }
}
static void* Event_Destroy(Event_Args* a) {
  CHECK_SIZE(Event_Args, a, event);
  if (a->event) { join_writer(a->event); free(a->event); live_objects--; }
  if (event_fail) return make_error(13, "fake event destroy failed");
  return NULL;
}
static void* Event_Await(Event_Args* a) {
  CHECK_SIZE(Event_Args, a, event);
  if (a->event->delay_ms > 0) usleep(a->event->delay_ms * 1000);
  join_writer(a->event);
  return a->event->code ? make_error(a->event->code, a->event->message) : NULL;
}


/* ------------------------------ key-value store ------------------------------- */
typedef void* (*CallbackError)(int code, const char* message, size_t message_size);
typedef void (*ValueDeleter)(char* value);
typedef struct {
  HEAD const char* key; size_t key_size; int timeout_in_ms; CallbackError* callback_error;
  void* user_arg; char* value; size_t value_size; ValueDeleter value_deleter_callback;
} KV_Get_Args;
typedef struct {
  HEAD const char* key; size_t key_size; CallbackError* callback_error; void* user_arg;
  char* value; size_t value_size; ValueDeleter value_deleter_callback;
} KV_TryGet_Args;
typedef struct {
  HEAD const char* key; size_t key_size; const char* value; size_t value_size;
  CallbackError* callback_error; void* user_arg;
} KV_Put_Args;
typedef FakeError* (*KV_Get)(KV_Get_Args*);
typedef FakeError* (*KV_TryGet)(KV_TryGet_Args*);
typedef FakeError* (*KV_Put)(KV_Put_Args*);

static void* callback_error(int code, const char* message, size_t size) {
  char m[400];
  snprintf(m, sizeof m, "%.*s", (int)size, message);
  return make_error(code, m);
}
static CallbackError callback_error_fn = callback_error;

/* Callback args as XLA's helper builds them: on the stack, `struct_size` and the out fields not
   set (0 and 0xa5 garbage here, so that the tests see what an unset field does). */
#define GARBAGE ((uintptr_t)0xa5a5a5a5a5a5a5a5ull)
#define STACK_ARGS(type, var) type var; memset(&var, 0xa5, sizeof var); var.struct_size = 0
#define NO_VALUE(a) ((uintptr_t)(a).value == GARBAGE || (uintptr_t)(a).value_deleter_callback == GARBAGE)
static FakeError* kv_put(KV_Put put, void* user_arg, const char* key, const char* value, size_t n) {
  STACK_ARGS(KV_Put_Args, a);
  a.key = key; a.key_size = strlen(key); a.value = value; a.value_size = n;
  a.callback_error = &callback_error_fn; a.user_arg = user_arg;
  return put(&a);
}

typedef struct {
  KV_Get get; void* get_arg; KV_Put put; void* put_arg; KV_TryGet try_get; void* try_get_arg;
  int self, processes, timeout_ms;
  FakeError* error; /* out */
} Rendezvous;

static FakeError* success_without_value(void) {
  return make_error(13, "the kv callback returned success without filling value and value_deleter_callback");
}
/* A get with the plugin's timeout; on success, out and size hold a malloc'd copy of the value. */
static FakeError* kv_get(Rendezvous* r, const char* key, char** out, size_t* size) {
  STACK_ARGS(KV_Get_Args, g);
  g.key = key; g.key_size = strlen(key); g.timeout_in_ms = r->timeout_ms;
  g.callback_error = &callback_error_fn; g.user_arg = r->get_arg;
  FakeError* e = r->get(&g);
  if (e) return e;
  if (NO_VALUE(g)) return success_without_value();
  *out = malloc(g.value_size + 1); memcpy(*out, g.value, g.value_size); *size = g.value_size;
  g.value_deleter_callback(g.value);
  return NULL;
}
static FakeError* kv_try_get(Rendezvous* r, const char* key, char** out, size_t* size) {
  STACK_ARGS(KV_TryGet_Args, g);
  g.key = key; g.key_size = strlen(key);
  g.callback_error = &callback_error_fn; g.user_arg = r->try_get_arg;
  FakeError* e = r->try_get(&g);
  if (e) return e;
  if (NO_VALUE(g)) return success_without_value();
  *out = malloc(g.value_size + 1); memcpy(*out, g.value, g.value_size); *size = g.value_size;
  g.value_deleter_callback(g.value);
  return NULL;
}

/* This node's value: binary on purpose (a 0 byte, 0xff), as NCCL ids are. */
static size_t node_value(int node, char* out) {
  int n = snprintf(out, 24, "node%d", node);
  out[n] = 0;
  out[n + 1] = (char)0xff;
  return (size_t)n + 2;
}

static FakeError* rendezvous_error(const char* what, FakeError* cause) {
  char m[500];
  snprintf(m, sizeof m, "fake rendezvous: %s: %s", what, cause ? cause->message : "null value");
  FakeError* e = make_error(cause ? cause->code : 13, m);
  if (cause) { free(cause); live_objects--; }
  return e;
}

/* The callbacks of the last client created with them, for Execute's clique exchange. */
static Rendezvous kv_client;
static bool kv_on_execute = false;
static int kv_launch_id = 0;

static void* run_clique_exchange(void* arg) {
  Rendezvous* r = arg;
  char key[64], value[32];
  snprintf(key, sizeof key, "fake/clique/%d", kv_launch_id);
  int n = snprintf(value, sizeof value, "clique%d", kv_launch_id);
  size_t len = strlen(last_rendezvous);
  if (r->self == 0) {
    FakeError* e = kv_put(r->put, r->put_arg, key, value, (size_t)n);
    if (e) { r->error = rendezvous_error("clique put", e); return NULL; }
    snprintf(last_rendezvous + len, sizeof last_rendezvous - len, " exec %d put;", kv_launch_id);
    return NULL;
  }
  char* got; size_t got_size;
  FakeError* e = kv_get(r, key, &got, &got_size);
  if (e) { r->error = rendezvous_error("clique get", e); return NULL; }
  bool same = got_size == (size_t)n && !memcmp(got, value, (size_t)n);
  free(got);
  if (!same) { r->error = rendezvous_error("clique get gave other bytes", NULL); return NULL; }
  snprintf(last_rendezvous + len, sizeof last_rendezvous - len, " exec %d got;", kv_launch_id);
  return NULL;
}

static void* run_rendezvous(void* arg) {
  Rendezvous* r = arg;
  char key[64], value[32], want[32];
  int n = snprintf(last_rendezvous, sizeof last_rendezvous, "put fake/node/%d;", r->self);
  snprintf(key, sizeof key, "fake/node/%d", r->self);
  size_t value_size = node_value(r->self, value);
  FakeError* e = kv_put(r->put, r->put_arg, key, value, value_size);
  if (e) { r->error = rendezvous_error("put", e); return NULL; }
  char* got; size_t got_size;
  if (r->try_get) {
    snprintf(key, sizeof key, "fake/absent/%d", r->self);
    e = kv_try_get(r, key, &got, &got_size);
    if (!e) free(got);
    if (!e || e->code != 5) { r->error = rendezvous_error("try_get of an absent key must be NOT_FOUND", e); return NULL; }
    free(e); live_objects--;
    snprintf(key, sizeof key, "fake/node/%d", r->self);
    e = kv_try_get(r, key, &got, &got_size);
    if (e) { r->error = rendezvous_error("try_get own key", e); return NULL; }
    bool same = got_size == value_size && !memcmp(got, value, value_size);
    free(got);
    if (!same) { r->error = rendezvous_error("try_get own key gave other bytes", NULL); return NULL; }
    n += snprintf(last_rendezvous + n, sizeof last_rendezvous - n, " try_get ok;");
  }
  n += snprintf(last_rendezvous + n, sizeof last_rendezvous - n, " got");
  for (int p = 0; p < r->processes; p++) {
    if (p == r->self) continue;
    snprintf(key, sizeof key, "fake/node/%d", p);
    e = kv_get(r, key, &got, &got_size);
    if (e) { r->error = rendezvous_error(key, e); return NULL; }
    size_t want_size = node_value(p, want);
    bool same = got_size == want_size && !memcmp(got, want, want_size);
    free(got);
    if (!same) { r->error = rendezvous_error("get gave other bytes", NULL); return NULL; }
    n += snprintf(last_rendezvous + n, sizeof last_rendezvous - n, " %d", p);
  }
  snprintf(last_rendezvous + n, sizeof last_rendezvous - n, ";");
  return NULL;
}

/* ----------------------------------- client ----------------------------------- */
typedef struct {
  HEAD const NamedValue* create_options; size_t num_options;
  void* kv_get_callback; void* kv_get_user_arg; void* kv_put_callback; void* kv_put_user_arg;
  void* client; void* kv_try_get_callback; void* kv_try_get_user_arg;
} Client_Create_Args;
typedef struct { HEAD void* client; } Client_Destroy_Args;
typedef struct { HEAD void* client; const char* str; size_t size; } Client_String_Args;
typedef struct { HEAD void* client; int process_index; } Client_ProcessIndex_Args;
typedef struct { HEAD void* client; FakeDevice* const* devices; size_t num_devices; } Client_Devices_Args;

static void* Client_Create(Client_Create_Args* a) {
  CHECK_SIZE(Client_Create_Args, a, kv_try_get_user_arg);
  last_options[0] = 0;
  const char* fail = NULL;
  int processes = 0, per_process = 0, self = 0, rendezvous_ms = -1;
  int64_t node_id = -1, num_nodes = -1;
  kv_on_execute = false;
  permute_devices = false;
  event_fail = false;
  memset(&kv_client, 0, sizeof kv_client);
  for (size_t i = 0; i < a->num_options; i++) {
    const NamedValue* o = &a->create_options[i];
    char item[200];
    switch (o->type) {
      case 0: snprintf(item, sizeof item, "%.*s=s:%.*s;", (int)o->name_size, o->name, (int)o->value_size, o->value.s); break;
      case 1: snprintf(item, sizeof item, "%.*s=i:%lld;", (int)o->name_size, o->name, (long long)o->value.i); break;
      case 2: {
        int n = snprintf(item, sizeof item, "%.*s=l:", (int)o->name_size, o->name);
        for (size_t k = 0; k < o->value_size; k++) n += snprintf(item + n, sizeof item - n, "%s%lld", k ? "," : "", (long long)o->value.list[k]);
        snprintf(item + n, sizeof item - n, ";");
        break;
      }
      case 3: snprintf(item, sizeof item, "%.*s=f:%g;", (int)o->name_size, o->name, o->value.f); break;
      case 4: snprintf(item, sizeof item, "%.*s=b:%d;", (int)o->name_size, o->name, o->value.b); break;
      default: return make_error(3, "fake plugin: unknown named value type");
    }
    strncat(last_options, item, sizeof last_options - strlen(last_options) - 1);
    /* The CUDA plugin's ValidateCreateOptions: a known option of another type is refused. */
    static const struct { const char* name; int type; } typed[] = {
        {"allocator", 0}, {"memory_fraction", 3}, {"preallocate", 4}, {"visible_devices", 2},
        {"node_id", 1}, {"num_nodes", 1}, {"collective_memory_size", 1}};
    for (size_t k = 0; k < sizeof typed / sizeof typed[0]; k++)
      if (o->name_size == strlen(typed[k].name) && !memcmp(o->name, typed[k].name, o->name_size) &&
          o->type != typed[k].type) {
        char m[200];
        snprintf(m, sizeof m, "Option passed to PJRT_Client_Create with name %s has type index %d but expected type index %d",
                 typed[k].name, o->type, typed[k].type);
        return make_error(3, m);
      }
    if (o->name_size == 7 && !memcmp(o->name, "node_id", 7)) node_id = o->value.i;
    if (o->name_size == 9 && !memcmp(o->name, "num_nodes", 9)) num_nodes = o->value.i;
    if (o->name_size == 20 && !memcmp(o->name, "fake_permute_devices", 20)) permute_devices = o->value.i != 0;
    if (o->name_size == 15 && !memcmp(o->name, "fake_event_fail", 15)) event_fail = o->value.i != 0;
    if (o->name_size == 4 && !memcmp(o->name, "fail", 4) && o->type == 0) fail = o->value.s;
    if (o->name_size == 14 && !memcmp(o->name, "await_delay_ms", 14)) await_delay_ms = (int)o->value.i;
    if (o->name_size == 14 && !memcmp(o->name, "fake_processes", 14)) processes = (int)o->value.i;
    if (o->name_size == 12 && !memcmp(o->name, "fake_devices", 12)) per_process = (int)o->value.i;
    if (o->name_size == 18 && !memcmp(o->name, "fake_process_index", 18)) self = (int)o->value.i;
    if (o->name_size == 18 && !memcmp(o->name, "fake_kv_rendezvous", 18)) rendezvous_ms = (int)o->value.i;
    if (o->name_size == 18 && !memcmp(o->name, "fake_kv_on_execute", 18)) kv_on_execute = o->value.i != 0;
  }
  if (num_nodes >= 1) {
    if (node_id < 0 || node_id >= num_nodes) {
      char m[120];
      snprintf(m, sizeof m, "fake plugin: node_id %lld is not in 0..%lld", (long long)node_id, (long long)num_nodes - 1);
      return make_error(3, m);
    }
    if (num_nodes > 1 && (!a->kv_get_callback || !a->kv_put_callback))
      return make_error(3, "fake plugin: num_nodes > 1 needs the kv callbacks (as the CUDA plugin does)");
    processes = (int)num_nodes;
    self = (int)node_id;
    if (num_nodes > 1 && rendezvous_ms < 0) rendezvous_ms = 30000;
  }
  if (processes || per_process) {
    set_topology(processes ? processes : 1, per_process ? per_process : 1, self);
  } else {
    set_topology(2, 2, 0); /* ids 0, 1 here, 2 and 3 in process 1; then hide id 3 */
    num_all = 3;
  }
  last_rendezvous[0] = 0;
  if (rendezvous_ms >= 0) {
    if (!a->kv_get_callback || !a->kv_put_callback) return make_error(3, "fake plugin: fake_kv_rendezvous needs the kv callbacks");
    Rendezvous r = {(KV_Get)a->kv_get_callback, a->kv_get_user_arg, (KV_Put)a->kv_put_callback,
                    a->kv_put_user_arg, (KV_TryGet)a->kv_try_get_callback, a->kv_try_get_user_arg,
                    self, processes ? processes : 1, rendezvous_ms, NULL};
    pthread_t thread; /* the callbacks come from a thread that is not the caller's */
    if (pthread_create(&thread, NULL, run_rendezvous, &r)) return make_error(13, "fake plugin: pthread_create failed");
    pthread_join(thread, NULL);
    if (r.error) return r.error;
    kv_client = r;
  }
  if (fail) {
    char m[300];
    snprintf(m, sizeof m, "fake plugin refused to create a client: %s", fail);
    return make_error(3, m);
  }
  a->client = &client_token;
  live_objects++;
  return NULL;
}
static void* Client_Destroy(Client_Destroy_Args* a) {
  CHECK_SIZE(Client_Destroy_Args, a, client);
  if (a->client) live_objects--;
  return NULL;
}
static void* Client_PlatformName(Client_String_Args* a) {
  CHECK_SIZE(Client_String_Args, a, size);
  a->str = "fake"; a->size = 4;
  return NULL;
}
static void* Client_PlatformVersion(Client_String_Args* a) {
  CHECK_SIZE(Client_String_Args, a, size);
  a->str = "fake 1.0"; a->size = 8;
  return NULL;
}
static void* Client_ProcessIndex(Client_ProcessIndex_Args* a) {
  CHECK_SIZE(Client_ProcessIndex_Args, a, process_index);
  a->process_index = process_index;
  return NULL;
}
static void* Client_Devices(Client_Devices_Args* a) {
  CHECK_SIZE(Client_Devices_Args, a, num_devices);
  a->devices = all_devices; a->num_devices = num_all;
  return NULL;
}
static void* Client_AddressableDevices(Client_Devices_Args* a) {
  CHECK_SIZE(Client_Devices_Args, a, num_devices);
  a->devices = addressable_devices; a->num_devices = num_addressable;
  return NULL;
}

/* ----------------------------------- devices ----------------------------------- */
typedef struct { HEAD FakeDevice* device; FakeDevice* description; } Device_GetDescription_Args;
typedef struct { HEAD FakeDevice* description; int value; } Description_Int_Args;
typedef struct { HEAD FakeDevice* description; const char* str; size_t size; } Description_String_Args;

static void* Device_GetDescription(Device_GetDescription_Args* a) {
  CHECK_SIZE(Device_GetDescription_Args, a, description);
  a->description = a->device; /* the device doubles as its description */
  return NULL;
}
static void* DeviceDescription_Id(Description_Int_Args* a) {
  CHECK_SIZE(Description_Int_Args, a, value);
  a->value = a->description->id;
  return NULL;
}
static void* DeviceDescription_ProcessIndex(Description_Int_Args* a) {
  CHECK_SIZE(Description_Int_Args, a, value);
  a->value = a->description->process;
  return NULL;
}
static void* DeviceDescription_Kind(Description_String_Args* a) {
  CHECK_SIZE(Description_String_Args, a, size);
  a->str = "FakeDevice"; a->size = 10;
  return NULL;
}
static void* DeviceDescription_DebugString(Description_String_Args* a) {
  CHECK_SIZE(Description_String_Args, a, size);
  snprintf(a->description->debug, sizeof a->description->debug, "FakeDevice(id=%d)", a->description->id);
  a->str = a->description->debug; a->size = strlen(a->description->debug);
  return NULL;
}

/* ---------------------------------- compile ----------------------------------- */
typedef struct { HEAD char* code; size_t code_size; const char* format; size_t format_size; } Program;
typedef struct {
  HEAD void* client; const Program* program; const char* compile_options;
  size_t compile_options_size; FakeLoaded* executable;
} Client_Compile_Args;
typedef struct { HEAD FakeLoaded* executable; } Loaded_Destroy_Args;
typedef struct {
  HEAD FakeLoaded* executable; FakeDevice* const* addressable_devices; size_t num_addressable_devices;
} Loaded_AddressableDevices_Args;
typedef struct { HEAD FakeLoaded* loaded; FakeExecutable* executable; } Loaded_GetExecutable_Args;
typedef struct { HEAD FakeExecutable* executable; } Executable_Destroy_Args;
typedef struct { HEAD FakeExecutable* executable; size_t num_outputs; } Executable_NumOutputs_Args;
typedef struct { HEAD FakeExecutable* executable; const char* name; size_t name_size; } Executable_Name_Args;

static bool contains(const char* text, size_t n, const char* word) {
  size_t w = strlen(word);
  for (size_t i = 0; i + w <= n; i++) if (!memcmp(text + i, word, w)) return true;
  return false;
}

/* ---- just enough protobuf to read the CompileOptionsProto's replicas and device assignment ---- */
static uint64_t varint(const unsigned char** p, const unsigned char* end) {
  uint64_t v = 0;
  for (int shift = 0; *p < end && shift < 64; shift += 7) {
    unsigned char b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
  }
  return v;
}
/* The first length-delimited field `field` of a message, or NULL. */
static const unsigned char* find_bytes(const unsigned char* p, const unsigned char* end, int field, size_t* n) {
  while (p < end) {
    uint64_t tag = varint(&p, end);
    int wire = (int)(tag & 7);
    if (wire == 0) varint(&p, end);
    else if (wire == 1) p += 8;
    else if (wire == 5) p += 4;
    else if (wire == 2) {
      size_t len = (size_t)varint(&p, end);
      if ((int)(tag >> 3) == field) { *n = len; return p; }
      p += len;
    } else return NULL;
  }
  return NULL;
}
static int64_t find_varint(const unsigned char* p, const unsigned char* end, int field, int64_t otherwise) {
  while (p < end) {
    uint64_t tag = varint(&p, end);
    int wire = (int)(tag & 7);
    if (wire == 0) { uint64_t v = varint(&p, end); if ((int)(tag >> 3) == field) return (int64_t)v; }
    else if (wire == 1) p += 8;
    else if (wire == 5) p += 4;
    else if (wire == 2) p += (size_t)varint(&p, end);
    else break;
  }
  return otherwise;
}
/* The addressable devices a compiled program runs on: those of its device assignment (replica
   order), else the first num_replicas addressable ones; reversed with fake_permute_devices. */
static void executable_devices(FakeLoaded* l, const unsigned char* opts, size_t n) {
  size_t bn = 0, dn = 0, cn = 0, idn = 0;
  const unsigned char* build = find_bytes(opts, opts + n, 3, &bn);
  const unsigned char* da = build ? find_bytes(build, build + bn, 9, &dn) : NULL;
  const unsigned char* cd = da ? find_bytes(da, da + dn, 3, &cn) : NULL;
  const unsigned char* ids = cd ? find_bytes(cd, cd + cn, 1, &idn) : NULL;
  FakeDevice* chosen[MAX_DEVICES];
  size_t k = 0;
  if (ids) {
    const unsigned char* q = ids;
    while (q < ids + idn) {
      int64_t id = (int64_t)varint(&q, ids + idn);
      for (size_t i = 0; i < num_addressable; i++)
        if (addressable_devices[i]->id == id && k < MAX_DEVICES) chosen[k++] = addressable_devices[i];
    }
  } else {
    int64_t replicas = build ? find_varint(build, build + bn, 4, 1) : 1;
    for (size_t i = 0; i < num_addressable && (int64_t)i < replicas; i++) chosen[k++] = addressable_devices[i];
  }
  l->num_devices = k;
  for (size_t i = 0; i < k; i++) l->devices[i] = chosen[permute_devices ? k - 1 - i : i];
}

static void* Client_Compile(Client_Compile_Args* a) {
  CHECK_SIZE(Client_Compile_Args, a, executable);
  CHECK_SIZE(Program, a->program, format_size);
  const Program* p = a->program;
  if (p->format_size != 4 || memcmp(p->format, "mlir", 4)) return make_error(12, "fake compile: format must be mlir");
  if (a->compile_options_size == 0) return make_error(3, "fake compile: empty compile options");
  if (contains(p->code, p->code_size, "syntax error")) return make_error(3, "fake compile: syntax error at line 1");
  FakeLoaded* l = calloc(1, sizeof(FakeLoaded));
  l->add = contains(p->code, p->code_size, "add");
  /* The devices it runs on, in the order Execute takes their argument lists. */
  executable_devices(l, (const unsigned char*)a->compile_options, a->compile_options_size);
  int n = snprintf(l->name, sizeof l->name, "fake:");
  for (size_t i = 0; i < a->compile_options_size && n < (int)sizeof l->name - 3; i++)
    n += snprintf(l->name + n, sizeof l->name - n, "%02x", (unsigned char)a->compile_options[i]);
  a->executable = l;
  live_objects++;
  return NULL;
}
static void* LoadedExecutable_Destroy(Loaded_Destroy_Args* a) {
  CHECK_SIZE(Loaded_Destroy_Args, a, executable);
  if (a->executable) { free(a->executable); live_objects--; }
  return NULL;
}
static void* LoadedExecutable_AddressableDevices(Loaded_AddressableDevices_Args* a) {
  CHECK_SIZE(Loaded_AddressableDevices_Args, a, num_addressable_devices);
  a->addressable_devices = a->executable->devices;
  a->num_addressable_devices = a->executable->num_devices;
  return NULL;
}
static void* LoadedExecutable_GetExecutable(Loaded_GetExecutable_Args* a) {
  CHECK_SIZE(Loaded_GetExecutable_Args, a, executable);
  FakeExecutable* e = calloc(1, sizeof(FakeExecutable));
  e->loaded = a->loaded;
  a->executable = e;
  live_objects++;
  return NULL;
}
static void* Executable_Destroy(Executable_Destroy_Args* a) {
  CHECK_SIZE(Executable_Destroy_Args, a, executable);
  if (a->executable) { free(a->executable); live_objects--; }
  return NULL;
}
static void* Executable_NumOutputs(Executable_NumOutputs_Args* a) {
  CHECK_SIZE(Executable_NumOutputs_Args, a, num_outputs);
  a->num_outputs = a->executable->loaded->add ? 1 : 2;
  return NULL;
}
static void* Executable_Name(Executable_Name_Args* a) {
  CHECK_SIZE(Executable_Name_Args, a, name_size);
  a->name = a->executable->loaded->name;
  a->name_size = strlen(a->executable->loaded->name);
  return NULL;
}

/* ---------------------------------- buffers ----------------------------------- */
typedef struct {
  HEAD void* client; const void* data; int type; const int64_t* dims; size_t num_dims;
  const int64_t* byte_strides; size_t num_byte_strides; int host_buffer_semantics;
  FakeDevice* device; void* memory; void* device_layout; FakeEvent* done_with_host_buffer;
  FakeBuffer* buffer;
} BufferFromHost_Args;
typedef struct { HEAD FakeBuffer* buffer; } Buffer_Destroy_Args;
typedef struct { HEAD FakeBuffer* buffer; int type; } Buffer_ElementType_Args;
typedef struct { HEAD FakeBuffer* buffer; const int64_t* dims; size_t num_dims; } Buffer_Dimensions_Args;
typedef struct {
  HEAD FakeBuffer* src; void* host_layout; void* dst; size_t dst_size; FakeEvent* event;
} Buffer_ToHost_Args;
typedef struct { HEAD FakeBuffer* buffer; FakeEvent* event; } Buffer_ReadyEvent_Args;

static size_t element_size(int type) {
  switch (type) {
    case 1: case 6: return 1;        /* PRED, U8 */
    case 4: case 8: case 11: return 4; /* S32, U32, F32 */
    case 13: return 2;               /* BF16 */
    default: return 0;
  }
}

static FakeBuffer* new_buffer(int type, const int64_t* dims, size_t num_dims, int device) {
  FakeBuffer* b = calloc(1, sizeof(FakeBuffer));
  b->type = type; b->num_dims = num_dims; b->device = device;
  size_t n = 1;
  for (size_t i = 0; i < num_dims; i++) { b->dims[i] = dims[i]; n *= (size_t)dims[i]; }
  b->nbytes = n * element_size(type);
  b->data = calloc(1, b->nbytes ? b->nbytes : 1);
  live_objects++;
  return b;
}

static void* Client_BufferFromHostBuffer(BufferFromHost_Args* a) {
  CHECK_SIZE(BufferFromHost_Args, a, buffer);
  if (!element_size(a->type)) return make_error(12, "fake plugin: unsupported element type");
  if (a->host_buffer_semantics != 1) return make_error(3, "fake plugin: expected kImmutableUntilTransferCompletes");
  if (a->num_dims > 8 || a->byte_strides || a->memory || a->device_layout) return make_error(3, "fake plugin: unexpected layout arguments");
  if (!a->data) return make_error(3, "fake plugin: null host data");
  FakeBuffer* b = new_buffer(a->type, a->dims, a->num_dims, a->device ? a->device->id : -1);
  memcpy(b->data, a->data, b->nbytes);
  a->buffer = b;
  a->done_with_host_buffer = make_event();
  return NULL;
}
static void* Buffer_Destroy(Buffer_Destroy_Args* a) {
  CHECK_SIZE(Buffer_Destroy_Args, a, buffer);
  if (a->buffer) { free(a->buffer->data); free(a->buffer); live_objects--; }
  return NULL;
}
static void* Buffer_ElementType(Buffer_ElementType_Args* a) {
  CHECK_SIZE(Buffer_ElementType_Args, a, type);
  a->type = a->buffer->type;
  return NULL;
}
static void* Buffer_Dimensions(Buffer_Dimensions_Args* a) {
  CHECK_SIZE(Buffer_Dimensions_Args, a, num_dims);
  a->dims = a->buffer->dims; a->num_dims = a->buffer->num_dims;
  return NULL;
}
typedef struct { void* dst; unsigned char* src; size_t n; } Copy;
static void* write_later(void* arg) {
  Copy* c = arg;
  usleep(2000); /* the caller's JS runs on meanwhile (and, under --stress-compaction, GCs) */
  memcpy(c->dst, c->src, c->n);
  free(c->src);
  free(c);
  return NULL;
}
static void* Buffer_ToHostBuffer(Buffer_ToHost_Args* a) {
  CHECK_SIZE(Buffer_ToHost_Args, a, event);
  if (!a->dst) { a->dst_size = a->src->nbytes; return NULL; }
  if (a->dst_size < a->src->nbytes) return make_error(3, "fake plugin: dst_size too small");
  /* As a device does: the bytes land in dst after this call returns, before the event fires. */
  Copy* c = malloc(sizeof(Copy));
  c->dst = a->dst; c->n = a->src->nbytes; c->src = malloc(c->n ? c->n : 1);
  memcpy(c->src, a->src->data, c->n);
  FakeEvent* ev = make_event();
  if (pthread_create(&ev->writer, NULL, write_later, c)) {
    memcpy(c->dst, c->src, c->n); free(c->src); free(c);
  } else {
    ev->has_writer = true;
  }
  a->event = ev;
  return NULL;
}
static void* Buffer_ReadyEvent(Buffer_ReadyEvent_Args* a) {
  CHECK_SIZE(Buffer_ReadyEvent_Args, a, event);
  a->event = make_event();
  return NULL;
}

/* ---------------------------------- execute ----------------------------------- */
typedef struct {
  HEAD void* send_callbacks; void* recv_callbacks; size_t num_send_ops; size_t num_recv_ops;
  int launch_id; const int64_t* non_donatable_input_indices; size_t num_non_donatable_input_indices;
  void* context; const char* call_location; size_t num_tasks; int* task_ids;
  int64_t* incarnation_ids; void* multi_slice_config; bool use_major_to_minor_data_layout_for_callbacks;
  void* hlo_output_callbacks; size_t num_hlo_output_callbacks;
} ExecuteOptions;
typedef struct {
  HEAD FakeLoaded* executable; ExecuteOptions* options; FakeBuffer* const* const* argument_lists;
  size_t num_devices; size_t num_args; FakeBuffer** const* output_lists;
  FakeEvent** device_complete_events; FakeDevice* execute_device;
} Execute_Args;

static void* LoadedExecutable_Execute(Execute_Args* a) {
  CHECK_SIZE(Execute_Args, a, execute_device);
  CHECK_SIZE(ExecuteOptions, a->options, num_hlo_output_callbacks);
  if (a->num_args != 2) return make_error(3, "fake execute: expects 2 arguments");
  if (kv_on_execute && kv_client.get && !a->executable->launched) {
    Rendezvous r = kv_client;
    kv_launch_id = a->options->launch_id;
    pthread_t thread;
    if (pthread_create(&thread, NULL, run_clique_exchange, &r)) return make_error(13, "fake plugin: pthread_create failed");
    pthread_join(thread, NULL);
    if (r.error) return r.error;
  }
  a->executable->launched = true;
  if (a->num_devices != a->executable->num_devices) {
    char m[120];
    snprintf(m, sizeof m, "fake execute: %zu argument lists for an executable on %zu devices", a->num_devices, a->executable->num_devices);
    return make_error(3, m);
  }
  int n = snprintf(last_non_donatable, sizeof last_non_donatable, "launch %d:", a->options->launch_id);
  for (size_t i = 0; i < a->options->num_non_donatable_input_indices; i++)
    n += snprintf(last_non_donatable + n, sizeof last_non_donatable - n, " %lld",
                  (long long)a->options->non_donatable_input_indices[i]);
  /* Donation is per device: each device's donated inputs are consumed, and a consumed buffer
     (on any device) must never be passed again. */
  bool donate[2] = {true, true};
  for (size_t i = 0; i < a->options->num_non_donatable_input_indices; i++) {
    int64_t k = a->options->non_donatable_input_indices[i];
    if (k >= 0 && k < 2) donate[k] = false;
  }
  for (size_t d = 0; d < a->num_devices; d++)
    for (int k = 0; k < 2; k++) {
      FakeBuffer* b = a->argument_lists[d][k];
      char m[120];
      if (b->donated) {
        snprintf(m, sizeof m, "fake execute: argument %d of device %zu was donated before", k, d);
        return make_error(3, m);
      }
      if (b->device != a->executable->devices[d]->id) {
        snprintf(m, sizeof m, "fake execute: argument %d of list %zu lives on device %d, the executable's device %zu is %d",
                 k, d, b->device, d, a->executable->devices[d]->id);
        return make_error(3, m);
      }
    }
  int m = snprintf(last_donated, sizeof last_donated, "donated:");
  for (size_t d = 0; d < a->num_devices; d++)
    for (int k = 0; k < 2; k++)
      if (donate[k]) m += snprintf(last_donated + m, sizeof last_donated - m, " d%zu/a%d", d, k);
  for (size_t d = 0; d < a->num_devices; d++) {
    FakeBuffer* x = a->argument_lists[d][0];
    FakeBuffer* y = a->argument_lists[d][1];
    if (a->executable->add) {
      if (x->type != 11 || y->type != 11 || x->nbytes != y->nbytes) return make_error(3, "fake add: f32 operands of one shape");
      FakeBuffer* out = new_buffer(11, x->dims, x->num_dims, x->device);
      for (size_t i = 0; i < x->nbytes / 4; i++) ((float*)out->data)[i] = ((float*)x->data)[i] + ((float*)y->data)[i];
      a->output_lists[d][0] = out;
    } else {
      FakeBuffer* o0 = new_buffer(y->type, y->dims, y->num_dims, y->device);
      memcpy(o0->data, y->data, y->nbytes);
      FakeBuffer* o1 = new_buffer(x->type, x->dims, x->num_dims, x->device);
      memcpy(o1->data, x->data, x->nbytes);
      a->output_lists[d][0] = o0;
      a->output_lists[d][1] = o1;
    }
    if (donate[0]) x->donated = true;
    if (donate[1]) y->donated = true;
  }
  return NULL;
}

/* ----------------------------------- the API ----------------------------------- */
typedef struct {
  size_t struct_size;
  void* extension_start;
  struct { size_t struct_size; void* extension_start; int major_version; int minor_version; } version;
  void* slots[138];
} Api;

static Api api;

const Api* GetPjrtApi(void) {
  api.struct_size = offsetof(Api, slots) + sizeof(void*) * FAKE_SLOTS;
  api.version.struct_size = sizeof api.version;
  api.version.major_version = 0;
  api.version.minor_version = FAKE_MINOR;
  void** s = api.slots;
  s[0] = Error_Destroy; s[1] = Error_Message; s[2] = Error_GetCode;
  s[3] = Plugin_Initialize; s[4] = Plugin_Attributes;
  s[5] = Event_Destroy; s[8] = Event_Await;
  s[10] = Client_Create; s[11] = Client_Destroy; s[12] = Client_PlatformName;
  s[13] = Client_ProcessIndex; s[14] = Client_PlatformVersion; s[15] = Client_Devices;
  s[16] = Client_AddressableDevices;
#ifndef FAKE_NO_COMPILE
  s[20] = Client_Compile;
#endif
  s[22] = Client_BufferFromHostBuffer;
  s[23] = DeviceDescription_Id; s[24] = DeviceDescription_ProcessIndex;
  s[26] = DeviceDescription_Kind; s[27] = DeviceDescription_DebugString;
  s[29] = Device_GetDescription;
  s[40] = Executable_Destroy; s[41] = Executable_Name; s[44] = Executable_NumOutputs;
  s[50] = LoadedExecutable_Destroy; s[51] = LoadedExecutable_GetExecutable;
  s[52] = LoadedExecutable_AddressableDevices;
  s[55] = LoadedExecutable_Execute;
  s[58] = Buffer_Destroy; s[59] = Buffer_ElementType; s[60] = Buffer_Dimensions;
  s[70] = Buffer_ToHostBuffer; s[72] = Buffer_ReadyEvent;
  /* Slots past FAKE_SLOTS are outside struct_size: a caller must not read them. Fill them with
     a value that crashes if called, so a missing bounds check cannot pass silently. */
  for (int i = FAKE_SLOTS; i < 138; i++) s[i] = (void*)(uintptr_t)0x1;
  return &api;
}
