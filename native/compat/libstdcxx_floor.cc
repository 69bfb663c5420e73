// Compiled into the Linux prebuilds only (scripts/build-prebuilds.js), not
// into builds from source. GCC 11 and later's headers call
// std::__throw_bad_array_new_length from std::allocator, a libstdc++ symbol
// of GCC 11 (GLIBCXX_3.4.29); official Node 22+ needs only GCC 5.1's
// (GLIBCXX_3.4.21). Defined here, hidden, the prebuilt addon does not import
// it and loads wherever Node does. The addon is built without exceptions:
// where libstdc++ would throw, it aborts, as an uncaught throw would.
namespace std {
[[noreturn]] __attribute__((visibility("hidden"))) void __throw_bad_array_new_length() { __builtin_abort(); }
}  // namespace std
