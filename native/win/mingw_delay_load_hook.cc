// The mingw-w64 build's Node-API and libuv imports are delay-loaded from
// "node.exe" (scripts/build-win32.js): this hook answers that name with the
// executable that hosts the process, so the same binary loads in node.exe, a
// renamed node.exe (a single-executable app) or Electron, which all export
// those symbols from their own .exe. node-gyp's MSVC builds get the same from
// node-gyp's win_delay_load_hook.cc. WS2_32 and the C runtime are ordinary
// imports.
#include <windows.h>
#include <delayimp.h>

namespace {

FARPROC WINAPI NodeIsTheHost(unsigned event, PDelayLoadInfo info) {
  if (event == dliNotePreLoadLibrary && _stricmp(info->szDll, "node.exe") == 0) {
    return reinterpret_cast<FARPROC>(GetModuleHandleW(nullptr));
  }
  return nullptr;
}

}  // namespace

extern "C" {
PfnDliHook __pfnDliNotifyHook2 = NodeIsTheHost;
PfnDliHook __pfnDliFailureHook2 = nullptr;
}
