{
  "targets": [
    {
      "target_name": "wfp_redirect",
      "sources": [
        "native/addon.cc",
        "native/js_errors.cc",
        "native/socket_lookup.cc",
        "native/wsa_errors.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "WFP_REDIRECT_BUILD=\"node-gyp\""
      ],
      "conditions": [
        ["OS=='win'", {
          "sources": [
            "native/win/os_socket.cc",
            "native/win/redirect_ioctl.cc"
          ],
          "defines": [
            "WIN32_LEAN_AND_MEAN",
            "_WIN32_WINNT=0x0602"
          ],
          "libraries": ["-lws2_32"]
        }, {
          "sources": [
            "native/posix/os_socket.cc",
            "native/posix/redirect_ioctl.cc"
          ],
          "cflags_cc": ["-Wall", "-Wextra"]
        }],
        ["OS=='linux'", {
          "sources": ["native/linux/original_destination.cc"]
        }, {
          "sources": ["native/no_netfilter/original_destination.cc"]
        }]
      ]
    }
  ]
}
