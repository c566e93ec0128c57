package profile

import (
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyLines maps every dotted key written in a TOML document (table headers
// included) to the line where it is written, so that a value found wrong
// after decoding can be reported at its place in the file. The document
// has already been decoded successfully; if it nevertheless fails to parse,
// the keys seen so far are returned.
func keyLines(data []byte) map[string]int {
	lines := make(map[string]int)
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		expr := p.Expression()
		if expr.Kind != unstable.Table && expr.Kind != unstable.ArrayTable && expr.Kind != unstable.KeyValue {
			continue
		}
		var parts []string
		line := 0
		it := expr.Key()
		for it.Next() {
			n := it.Node()
			if line == 0 {
				line = p.Shape(n.Raw).Start.Line
			}
			parts = append(parts, string(n.Data))
		}
		switch expr.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = parts
			if k := strings.Join(parts, "."); k != "" {
				if _, ok := lines[k]; !ok {
					lines[k] = line
				}
			}
		case unstable.KeyValue:
			full := append(append([]string(nil), table...), parts...)
			lines[strings.Join(full, ".")] = line
		}
	}
	return lines
}
