// Vite builds the Svelte app into ../static, which kitpy serves (see ../kitpy.toml).
// `npm run dev` serves it on http://127.0.0.1:5174 with hot reload, and hands /api
// to `kitpy dev` on port 5173: run both.
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [svelte()],
  build: {
    outDir: "../static",
    emptyOutDir: true,
  },
  server: {
    host: "127.0.0.1",
    port: 5174,
    strictPort: true,
    proxy: { "/api": "http://127.0.0.1:5173" },
  },
});
