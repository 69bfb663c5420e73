{
  "target_defaults": {
    "include_dirs": [
      "../../native",
      "<!(node -p \"require('path').dirname(require.resolve('node-addon-api/napi.h'))\")"
    ],
    "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
    "cflags_cc": ["-Wall", "-Wextra"]
  },
  "targets": [
    {
      "target_name": "wfp_conformance",
      "sources": [
        "conformance_addon.cc",
        "socket_probe.cc",
        "../../native/js_errors.cc",
        "../../native/socket_lookup.cc",
        "../../native/posix/os_socket.cc",
        "../../native/wsa_errors.cc"
      ]
    },
    {
      "target_name": "wfp_lookup_fallback",
      "sources": [
        "lookup_fallback_addon.cc",
        "socket_probe.cc",
        "../../native/js_errors.cc",
        "../../native/posix/os_socket.cc",
        "../../native/wsa_errors.cc"
      ]
    },
    {
      "target_name": "wfp_udp_probe",
      "sources": ["udp_probe.cc"]
    },
    {
      "target_name": "wfp_relay_asan",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["relay_addon.cc"],
          "defines": ["WFP_REDIRECT_RELAY_SPLICE_AFTER=8192"],
          "cflags_cc": ["-Wno-subobject-linkage", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-O1", "-g"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    },
    {
      "target_name": "wfp_relay_small",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["relay_addon.cc"],
          "defines": ["WFP_REDIRECT_RELAY_BUFFER_BYTES=1024", "WFP_REDIRECT_RELAY_SPLICE_AFTER=4096"],
          "cflags_cc": ["-Wno-subobject-linkage"]
        }]
      ]
    }
  ]
}
