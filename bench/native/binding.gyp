{
  "targets": [
    {
      "target_name": "wfp_bench",
      "sources": ["bench_addon.cc", "raw_ioctl_none.cc"],
      "include_dirs": [
        "<!(node -p \"require('path').dirname(require.resolve('node-addon-api/napi.h'))\")"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-Wall", "-Wextra"]
    }
  ]
}
