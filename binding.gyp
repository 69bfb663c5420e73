{
  "targets": [
    {
      "target_name": "wfp_redirect",
      "sources": [
        "native/addon.cc",
        "native/js_args.cc",
        "native/js_errors.cc",
        "native/process_binding.cc",
        "native/relay/relay_binding.cc",
        "native/socket_lookup.cc",
        "native/udp_binding.cc",
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
            "native/win/owner_pid_table.cc",
            "native/win/redirect_ioctl.cc",
            "native/win/udp_socket.cc",
            "native/relay/relay_engine.cc",
            "native/relay/relay_socket_win.cc"
          ],
          "defines": [
            "WIN32_LEAN_AND_MEAN",
            "_WIN32_WINNT=0x0602"
          ],
          "libraries": ["-lws2_32", "-liphlpapi"]
        }, {
          "sources": [
            "native/posix/os_socket.cc",
            "native/posix/owner_pid_table.cc",
            "native/posix/redirect_ioctl.cc",
            "native/posix/udp_socket.cc"
          ],
          "cflags_cc": ["-Wall", "-Wextra"]
        }],
        ["OS=='linux'", {
          "sources": ["native/linux/original_destination.cc", "native/linux/socket_mark.cc", "native/linux/udp_tproxy.cc", "native/linux/socket_owner.cc", "native/relay/relay_engine.cc", "native/relay/relay_epoll_set.cc", "native/relay/relay_socket_posix.cc"]
        }, {
          "sources": ["native/no_netfilter/original_destination.cc", "native/no_netfilter/socket_mark.cc", "native/no_netfilter/udp_tproxy.cc", "native/no_netfilter/socket_owner.cc"]
        }]
      ]
    }
  ]
}
