//! ringcast build (Zig 0.17.0).
//!
//!   zig build                       -> zig-out/bin/ringcast (Debug unless -Doptimize=...)
//!   zig build -Doptimize=ReleaseFast
//!   zig build test                  -> every tests/unit/*/test_*.c, each its own executable
//!   zig build test -Dtest-filter=ws -> only tests whose path contains "ws"
//!   zig build run -- --listen 0.0.0.0:8080 --echo
//!
//! Sources are discovered by walking src/ and tests/unit/ at configure time, so
//! adding a .c file (or a new module directory) needs no edit here. Every walked
//! directory is registered with `dependOnDirectoryContents`, which keeps Zig's
//! configure cache correct when files are added, removed or renamed.
const std = @import("std");

/// System libraries, by pkg-config name. Adding one is a one-line change here;
/// tests/sanitize.sh and tests/fuzz/run.sh read this same list (between the
/// markers) so they link the same set.
const system_libs = [_][]const u8{
    // pkg-config:begin
    "liburing",
    "libcjson",
    "libisal", // src/ws/deflate.c: permessage-deflate, levels 1-3 and small windows
    "libdeflate", // src/ws/deflate.c: permessage-deflate, levels 4-12
    "zlib", // src/ws/deflate.c: inflate of clients' messages
    "hiredis", // src/ingest/redis.c, src/net/redis_link.c: RESP formatter and reader only
    "wolfssl", // src/net/tls.c: wss:// and https:// through custom I/O callbacks
    // pkg-config:end
};

const c_flags_common = [_][]const u8{
    "-std=c11",
    "-D_GNU_SOURCE",
    "-Wall",
    "-Wextra",
    "-fno-strict-aliasing",
};

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const werror = b.option(bool, "werror", "Treat C warnings as errors") orelse false;
    const sanitize_c = b.option(std.zig.SanitizeC, "sanitize-c", "C UBSan mode (off, trap, full); default: Zig's choice (on in debug/safe)") orelse null;
    const test_filter = b.option([]const u8, "test-filter", "Only build/run unit tests whose path contains this substring");

    var flags: std.ArrayList([]const u8) = .empty;
    flags.appendSlice(b.allocator, &c_flags_common) catch @panic("OOM");
    switch (optimize) {
        .fast, .safe => flags.append(b.allocator, "-O2") catch @panic("OOM"),
        .debug, .small => {},
    }
    if (werror) flags.append(b.allocator, "-Werror") catch @panic("OOM");
    const cflags = flags.items;

    // ---- discover sources -------------------------------------------------
    const src_files = collect(b, "src", .{ .suffix = ".c" });
    var core_files: std.ArrayList([]const u8) = .empty;
    var main_file: ?[]const u8 = null;
    for (src_files) |f| {
        if (std.mem.eql(u8, f, "src/main.c")) {
            main_file = f;
        } else {
            core_files.append(b.allocator, f) catch @panic("OOM");
        }
    }

    // ---- ringcast_core: every src/**/*.c except src/main.c -----------------
    var core: ?*std.Build.Step.Compile = null;
    if (core_files.items.len > 0) {
        const core_mod = newModule(b, target, optimize, sanitize_c);
        core_mod.addCSourceFiles(.{ .files = core_files.items, .flags = cflags });
        core = b.addLibrary(.{
            .name = "ringcast_core",
            .linkage = .static,
            .root_module = core_mod,
        });
    }

    // ---- the server ---------------------------------------------------------
    const exe_mod = newModule(b, target, optimize, sanitize_c);
    if (main_file) |m| {
        exe_mod.addCSourceFiles(.{ .files = &.{m}, .flags = cflags });
    } else {
        b.getInstallStep().dependOn(&b.addFail("src/main.c is missing").step);
    }
    if (core) |c| exe_mod.linkLibrary(c);
    const exe = b.addExecutable(.{ .name = "ringcast", .root_module = exe_mod });
    b.installArtifact(exe);

    const run_cmd = b.addRunArtifact(exe);
    run_cmd.step.dependOn(b.getInstallStep());
    run_cmd.addPassthruArgs();
    b.step("run", "Build and run ringcast (args after --)").dependOn(&run_cmd.step);

    // ---- unit tests -----------------------------------------------------------
    const test_step = b.step("test", "Build and run every tests/unit/*/test_*.c");
    const test_files = collect(b, "tests/unit", .{ .prefix = "test_", .suffix = ".c", .min_depth = 2 });
    var n_tests: usize = 0;
    for (test_files) |tf| {
        if (test_filter) |flt| if (std.mem.find(u8, tf, flt) == null) continue;
        const t_mod = newModule(b, target, optimize, sanitize_c);
        t_mod.addIncludePath(b.path("tests/unit"));
        t_mod.addCSourceFiles(.{ .files = &.{tf}, .flags = cflags });
        if (core) |c| t_mod.linkLibrary(c);
        const t_exe = b.addExecutable(.{ .name = testName(b, tf), .root_module = t_mod });
        const t_run = b.addRunArtifact(t_exe);
        t_run.setName(b.fmt("run {s}", .{tf}));
        // Run from the repo root so tests can open fixtures by relative path.
        t_run.setCwd(b.path(""));
        test_step.dependOn(&t_run.step);
        n_tests += 1;
    }
    if (n_tests == 0) {
        test_step.dependOn(&b.addFail("no unit tests found (tests/unit/*/test_*.c)").step);
    }
}

fn newModule(
    b: *std.Build,
    target: std.Build.ResolvedTarget,
    optimize: std.builtin.Optimize,
    sanitize_c: ?std.zig.SanitizeC,
) *std.Build.Module {
    const m = b.createModule(.{
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .sanitize_c = sanitize_c,
    });
    m.addIncludePath(b.path("include"));
    m.linkSystemLibrary("pthread", .{});
    for (system_libs) |lib| m.linkSystemLibrary(lib, .{ .use_pkg_config = .force });
    return m;
}

/// tests/unit/ws/test_frame.c -> "test_ws_frame"
fn testName(b: *std.Build, rel: []const u8) []const u8 {
    const base = std.fs.path.stem(rel); // test_frame
    const dir = std.fs.path.basename(std.fs.path.dirname(rel) orelse "."); // ws
    return b.fmt("test_{s}_{s}", .{ dir, base["test_".len..] });
}

const CollectOptions = struct {
    prefix: []const u8 = "",
    suffix: []const u8,
    /// 1 = files directly in the root dir, 2 = one directory below, ...
    min_depth: usize = 1,
};

/// Recursively lists files under `root` (relative to the build root) whose
/// basename matches prefix/suffix; returns sorted paths relative to the build
/// root. Every directory visited becomes a configure dependency so the cached
/// configuration is invalidated when an entry is added, removed or renamed.
fn collect(b: *std.Build, root: []const u8, opts: CollectOptions) []const []const u8 {
    const io = b.graph.io;
    const arena = b.allocator;
    var out: std.ArrayList([]const u8) = .empty;

    var dir = b.root.openDir(io, root, .{ .iterate = true }) catch |err| switch (err) {
        error.FileNotFound => {
            // Re-configure when it appears.
            b.dependOnDirectoryContents(b.path(std.fs.path.dirname(root) orelse ""));
            return &.{};
        },
        else => std.debug.panic("cannot open {s}: {t}", .{ root, err }),
    };
    defer dir.close(io);
    b.dependOnDirectoryContents(b.path(root));

    var walker = dir.walk(arena) catch @panic("OOM");
    defer walker.deinit();
    while (walker.next(io) catch |err| std.debug.panic("walking {s}: {t}", .{ root, err })) |entry| {
        switch (entry.kind) {
            .directory => b.dependOnDirectoryContents(b.path(b.pathJoin(&.{ root, entry.path }))),
            .file, .sym_link => {
                if (entry.depth() < opts.min_depth) continue;
                if (std.mem.startsWith(u8, entry.basename, ".")) continue; // editor droppings
                if (!std.mem.startsWith(u8, entry.basename, opts.prefix)) continue;
                if (!std.mem.endsWith(u8, entry.basename, opts.suffix)) continue;
                out.append(arena, b.pathJoin(&.{ root, entry.path })) catch @panic("OOM");
            },
            else => {},
        }
    }
    std.mem.sort([]const u8, out.items, {}, lessThan);
    return out.items;
}

fn lessThan(_: void, a: []const u8, b: []const u8) bool {
    return std.mem.lessThan(u8, a, b);
}
