package caddymodule

// SkipSentinels lets tests build a Sentinel client the way the gateway does.
var SkipSentinels = skipSentinels
