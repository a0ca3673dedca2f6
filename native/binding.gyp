{
  "targets": [
    {
      "target_name": "stria_fuse",
      "sources": [
        "src/addon.cc",
        "src/session.cc",
        "src/fuse_ops.cc",
        "src/buffer_pool.cc"
      ],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"],
      "defines": ["NAPI_VERSION=8", "FUSE_USE_VERSION=312"]
    }
  ]
}
