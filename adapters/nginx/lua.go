package nginx

import (
	"fmt"
	"strings"

	"github.com/graylane/graylane/gray"
	"github.com/graylane/graylane/traffic"
)

// luaInput is what an app's location snippet is rendered from.
type luaInput struct {
	app, ident     string
	header, cookie string
	hasher         gray.Hasher
	split          traffic.Split
	upstreams      func(version string) string
	trustHeader    string
}

// locationSnippet renders {app}.location: the directives that decide a
// request's version inside a location. set_by_lua_block computes the
// bucket of docs/gray.md in LuaJIT's 64-bit integers (FNV-1a 64 from the
// salt's precomputed state over the trimmed user key, then fmix64, mod
// 10000) and returns the upstream; the proxy_set_header lines pass the
// decision on in n-d-version and drop what an untrusted caller may not
// send on.
//
// The key is the header's value, else the cookie's (the first pair with
// that name in the Cookie header, blanks trimmed, surrounding quotes
// removed), as raw bytes: exactly what graylane's proxy and SDK hash.
func locationSnippet(in luaInput) string {
	var b strings.Builder
	v := "$" + in.ident
	fmt.Fprintf(&b, "# graylane routing of app %s: include in a location, then proxy_pass http://%s;\n", in.app, v)
	fmt.Fprintf(&b, "set %s_nd \"\";\n", v)
	fmt.Fprintf(&b, "set_by_lua_block %s {\n", v)
	b.WriteString("    local bit = require \"bit\"\n")
	b.WriteString("    local bxor, rshift = bit.bxor, bit.rshift\n")
	b.WriteString("    local var = ngx.var\n")
	fmt.Fprintf(&b, "    local key = var.http_%s\n", headerVar(in.header))
	b.WriteString("    if key then key = key:match(\"^[ \\t\\r\\n]*(.-)[ \\t\\r\\n]*$\") end\n")
	b.WriteString("    if not key or key == \"\" then\n")
	b.WriteString("        key = nil\n")
	b.WriteString("        local c = var.http_cookie\n")
	b.WriteString("        if c then\n")
	b.WriteString("            for pair in (c .. \";\"):gmatch(\"([^;]*);\") do\n")
	b.WriteString("                local k, val = pair:match(\"^[ \\t]*([^=]-)[ \\t]*=(.*)$\")\n")
	fmt.Fprintf(&b, "                if k == %q then\n", in.cookie)
	b.WriteString("                    val = val:match(\"^[ \\t]*(.-)[ \\t]*$\")\n")
	b.WriteString("                    if #val >= 2 and val:sub(1, 1) == '\"' and val:sub(-1) == '\"' then val = val:sub(2, -2) end\n")
	b.WriteString("                    key = val:match(\"^[ \\t\\r\\n]*(.-)[ \\t\\r\\n]*$\")\n")
	b.WriteString("                    break\n")
	b.WriteString("                end\n")
	b.WriteString("            end\n")
	b.WriteString("        end\n")
	b.WriteString("    end\n")
	b.WriteString("    local bucket\n")
	b.WriteString("    if key and key ~= \"\" then\n")
	fmt.Fprintf(&b, "        local h = 0x%016xULL -- FNV-1a 64 state after the salt and ':'\n", in.hasher.State())
	b.WriteString("        for i = 1, #key do h = bxor(h, key:byte(i)) * 0x100000001b3ULL end\n")
	b.WriteString("        h = bxor(h, rshift(h, 33)) * 0xff51afd7ed558ccdULL\n")
	b.WriteString("        h = bxor(h, rshift(h, 33)) * 0xc4ceb9fe1a85ec53ULL\n")
	b.WriteString("        h = bxor(h, rshift(h, 33))\n")
	b.WriteString("        bucket = tonumber(h % 10000ULL)\n")
	b.WriteString("    else\n")
	b.WriteString("        bucket = tonumber(var.request_id:sub(1, 8), 16) % 10000\n")
	b.WriteString("    end\n")

	// routed versions (pins) and the cuts
	var routed []string
	for _, w := range in.split.Weights {
		if w.Weight > 0 {
			routed = append(routed, w.Version)
		}
	}
	if p := in.split.Preview; p != "" && !contains(routed, p) {
		routed = append(routed, p)
	}
	b.WriteString("    local version\n")
	fmt.Fprintf(&b, "    if var.%s_trusted == \"1\" then\n", in.ident)
	if len(routed) > 0 {
		// the preview, or a weighted version (an analysis check aimed at the canary)
		var cond []string
		for _, r := range routed {
			cond = append(cond, fmt.Sprintf("pv == %q", r))
		}
		fmt.Fprintf(&b, "        local pv = var.http_%s\n", headerVar(PreviewHeader))
		fmt.Fprintf(&b, "        if %s then version = pv end\n", strings.Join(cond, " or "))
	}
	b.WriteString("        local nd = var.http_n_d_version\n")
	b.WriteString("        if not version and nd then\n")
	b.WriteString("            local pin\n")
	fmt.Fprintf(&b, "            if nd:sub(1, 1) == \"{\" then pin = nd:match('\"%s\"%%s*:%%s*\"([^\"]*)\"') else pin = nd end\n", luaPattern(in.app))
	b.WriteString("            if pin then pin = pin:match(\"^[ \\t]*([^;]-)[ \\t]*;\") or pin:match(\"^[ \\t]*(.-)[ \\t]*$\") end\n")
	if len(routed) > 0 {
		var cond []string
		for _, r := range routed {
			cond = append(cond, fmt.Sprintf("pin == %q", r))
		}
		fmt.Fprintf(&b, "            if %s then version = pin end\n", strings.Join(cond, " or "))
	}
	b.WriteString("        end\n")
	b.WriteString("    end\n")
	var nz []traffic.VersionWeight
	for _, w := range in.split.Weights {
		if w.Weight > 0 {
			nz = append(nz, w)
		}
	}
	if len(nz) > 0 {
		b.WriteString("    if not version then\n")
		cum := 0
		for i, w := range nz {
			cum += w.Weight * 100
			switch {
			case len(nz) == 1:
				fmt.Fprintf(&b, "        version = %q\n", w.Version)
			case i == 0:
				fmt.Fprintf(&b, "        if bucket < %d then version = %q\n", cum, w.Version)
			case i == len(nz)-1:
				fmt.Fprintf(&b, "        else version = %q end\n", w.Version)
			default:
				fmt.Fprintf(&b, "        elseif bucket < %d then version = %q\n", cum, w.Version)
			}
		}
		b.WriteString("    end\n")
	}
	fmt.Fprintf(&b, "    if not version then return %q end\n", in.upstreams(""))
	b.WriteString("    local out = '{\"" + in.app + "\":\"' .. version .. '\"}'\n")
	b.WriteString("    local nd = var.http_n_d_version\n")
	fmt.Fprintf(&b, "    if var.%s_trusted == \"1\" and nd and nd:sub(1, 1) == \"{\" and nd ~= \"{}\" then\n", in.ident)
	fmt.Fprintf(&b, "        out = nd:gsub('\"%s\"%%s*:%%s*\"[^\"]*\"%%s*,?', '')\n", luaPattern(in.app))
	b.WriteString("        out = out:gsub(\",%s*}$\", \"}\")\n")
	b.WriteString("        if out == \"{}\" then out = '{\"" + in.app + "\":\"' .. version .. '\"}'\n")
	b.WriteString("        else out = '{\"" + in.app + "\":\"' .. version .. '\",' .. out:sub(2) end\n")
	b.WriteString("    end\n")
	fmt.Fprintf(&b, "    var.%s_nd = out\n", in.ident)
	b.WriteString("    local upstreams = {")
	for i, r := range routed {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "[%q] = %q", r, in.upstreams(r))
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, "    return upstreams[version] or %q\n", in.upstreams(""))
	b.WriteString("}\n")
	fmt.Fprintf(&b, "proxy_set_header n-d-version %s_nd;\n", v)
	fmt.Fprintf(&b, "proxy_set_header %s %s_fwd_preview;\n", PreviewHeader, v)
	fmt.Fprintf(&b, "proxy_set_header %s %s_fwd_weight;\n", gray.HeaderVersionWeight, v)
	fmt.Fprintf(&b, "proxy_set_header %s %s_fwd_region;\n", gray.HeaderRegion, v)
	fmt.Fprintf(&b, "proxy_set_header %s %s_fwd_address;\n", gray.HeaderAddress, v)
	if in.trustHeader != "" {
		fmt.Fprintf(&b, "proxy_set_header %s \"\";\n", in.trustHeader)
	}
	return b.String()
}

// luaPattern escapes s for a Lua pattern (app names have '-', a Lua
// pattern's lazy repetition).
func luaPattern(s string) string {
	var b strings.Builder
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b.WriteByte('%')
		}
		b.WriteRune(c)
	}
	return b.String()
}
