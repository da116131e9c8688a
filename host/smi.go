package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrNoNvidiaSMI is wrapped when nvidia-smi is not on PATH.
var ErrNoNvidiaSMI = errors.New("nvidia-smi not found on PATH")

// SMIGPU is one GPU of `nvidia-smi -L`, with its MIG devices.
type SMIGPU struct {
	Index int
	UUID  string
	Model string
	MIG   []SMIMIG
}

// SMIMIG is one MIG device line: "MIG 1g.10gb Device 0: (UUID: MIG-…)".
// Device is NVML's MIG device index on its GPU, the <mig> of <gpu>:<mig>.
type SMIMIG struct {
	Profile string
	Device  int
	UUID    string
}

var (
	smiGPULine = regexp.MustCompile(`^GPU (\d+): (.*) \(UUID: (GPU-[0-9A-Za-z-]+)\)\s*$`)
	smiMIGLine = regexp.MustCompile(`^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)\s]+)\)\s*$`)
)

// ParseNvidiaSMIList reads `nvidia-smi -L`. Lines it does not know (warnings,
// blank lines) are skipped; a MIG line before any GPU line is an error.
func ParseNvidiaSMIList(text string) ([]SMIGPU, error) {
	var gpus []SMIGPU
	for i, line := range strings.Split(text, "\n") {
		if m := smiGPULine.FindStringSubmatch(line); m != nil {
			idx, err := strconv.Atoi(m[1])
			if err != nil {
				return nil, fmt.Errorf("nvidia-smi -L line %d: GPU index %q: %w", i+1, m[1], err)
			}
			gpus = append(gpus, SMIGPU{Index: idx, Model: m[2], UUID: m[3]})
			continue
		}
		if m := smiMIGLine.FindStringSubmatch(line); m != nil {
			if len(gpus) == 0 {
				return nil, fmt.Errorf("nvidia-smi -L line %d: a MIG device before any GPU: %q", i+1, line)
			}
			dev, err := strconv.Atoi(m[2])
			if err != nil {
				return nil, fmt.Errorf("nvidia-smi -L line %d: MIG device %q: %w", i+1, m[2], err)
			}
			g := &gpus[len(gpus)-1]
			g.MIG = append(g.MIG, SMIMIG{Profile: m[1], Device: dev, UUID: m[3]})
		}
	}
	return gpus, nil
}

// NvidiaSMIList runs `nvidia-smi -L` (found on PATH) and parses it. It runs
// on this machine whatever --root says: NVML knows MIG UUIDs, procfs does not.
func NvidiaSMIList(ctx context.Context) ([]SMIGPU, error) {
	bin, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil, ErrNoNvidiaSMI
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-L")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s -L: %w: %s", bin, err, strings.TrimSpace(stderr.String()+" "+stdout.String()))
	}
	return ParseNvidiaSMIList(stdout.String())
}
