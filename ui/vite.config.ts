import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// Tauri embeds ui/dist (frontendDist "../ui/dist"); everything is bundled, nothing is remote.
export default defineConfig({
  plugins: [svelte()],
  base: "./",
  clearScreen: false,
  server: { host: "127.0.0.1", port: 5173, strictPort: true },
  preview: { host: "127.0.0.1", port: 4173, strictPort: true },
  build: {
    target: ["safari15", "chrome105"],
    outDir: "dist",
    emptyOutDir: true,
    // The mock backend is its own chunk, fetched only outside Tauri.
    chunkSizeWarningLimit: 600,
  },
});
