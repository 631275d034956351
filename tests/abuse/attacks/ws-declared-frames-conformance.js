// The declared-frames attack of ws-declared-frames, against examples/conformance-server
// (glibc's allocator, where an untouched reservation never showed in RSS: ~10 KB per
// connection before the fix as after; the bound is the same).
import { CONNECTIONS, trickleDeclaredFrames } from "./ws-declared-frames.js";
import { chatsOnce } from "../lib/raw.js";

export default {
  name: "ws-declared-frames-conformance",
  sends: `${CONNECTIONS} WebSockets from 20 addresses, each declaring an 8 MiB frame and trickling 100 bytes of it every 0.5 s for 4 s`,
  target: "conformance",
  bounds: { rssGrowthMiB: 100, threads: 40, legitMs: 15000 },
  timeoutMs: 30000,
  attack: trickleDeclaredFrames,
  legit: (ctx) => chatsOnce(ctx, { localAddress: ctx.addr(200) }),
};
