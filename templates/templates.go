// Package templates holds the text templates gpuimg renders: the Dockerfile
// equivalent of a build, the device-node init script and its systemd unit.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

// Render executes the named template (a file name in this directory) with data.
func Render(name string, data any) (string, error) {
	t, err := template.New(name).Option("missingkey=error").ParseFS(files, name)
	if err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	return buf.String(), nil
}

// InitDevices is the data of init-devices.sh.tmpl and nvidia-devices.service.tmpl.
type InitDevices struct {
	LoadModules bool
	// Gpuimg is the binary the systemd unit runs.
	Gpuimg string
	// IMEXChannels are the IMEX channels to make; IMEXArg is the same list
	// as --imex-channels takes it ("0,1").
	IMEXChannels []int
	IMEXArg      string
}
