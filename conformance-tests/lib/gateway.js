// The conformance cases phx-gateway's hook model cannot express (docs/gateway.md, "What
// the hook model cannot express"): skipped with their reason when PHX_GATEWAY=1.
// Keys are test names without the "[long poll]"/"[gateway]" prefixes.
export const gatewayGaps = {};
