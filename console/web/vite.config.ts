import { defineConfig } from 'vite';

// The console is built into ../dist, which the Go package console embeds
// (go:embed) and which is committed: `make console-check` rebuilds it from
// these sources and fails if anything differs, so the build must be
// deterministic (no timestamps, content-hashed file names).
export default defineConfig({
  base: '/',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2022',
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1200,
  },
});
