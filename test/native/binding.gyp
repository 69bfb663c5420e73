{
  "targets": [
    {
      "target_name": "wfp_conformance",
      "sources": [
        "conformance_addon.cc",
        "../../native/js_errors.cc",
        "../../native/wsa_errors.cc"
      ],
      "include_dirs": [
        "../../native",
        "<!(node -p \"require('path').dirname(require.resolve('node-addon-api/napi.h'))\")"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-Wall", "-Wextra"]
    }
  ]
}
