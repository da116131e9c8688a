package drivers

// cudaMinDrivers is the CUDA toolkit → minimum Linux x86_64 driver table
// (REFERENCE 1.3, from the CUDA release notes), oldest first. A range such as
// "12.1.0–12.1.1" is recorded as its newest release; 11.0.1 RC is left out.
var cudaMinDrivers = []struct{ cuda, minDriver string }{
	{"10.0.130", "410.48"},
	{"10.1.105", "418.39"},
	{"10.2.89", "440.33"},
	{"11.0.2", "450.51.05"},
	{"11.0.3", "450.51.06"},
	{"11.1.0", "455.23"},
	{"11.1.1", "455.32"},
	{"11.2.0", "460.27.03"},
	{"11.2.2", "460.32.03"},
	{"11.3", "465.19.01"},
	{"11.4.0", "470.42.01"},
	{"11.4.2", "470.57.02"},
	{"11.4.4", "470.82.01"},
	{"11.5", "495.29.05"},
	{"11.6.0", "510.39.01"},
	{"11.6.2", "510.47.03"},
	{"11.7.0", "515.43.04"},
	{"11.7.1", "515.48.07"},
	{"11.8.0", "520.61.05"},
	{"12.0.0", "525.60.13"},
	{"12.0.1", "525.85.11"},
	{"12.1.1", "530.30.02"},
	{"12.2.0", "535.54.03"},
	{"12.2.1", "535.86.09"},
	{"12.2.2", "535.104.05"},
	{"12.3.0", "545.23.06"},
	{"12.3.1", "545.23.08"},
	{"12.4.0", "550.54.14"},
	{"12.4.1", "550.54.15"},
	{"12.5.0", "555.42.02"},
	{"12.5.1", "555.42.06"},
	{"12.6.0", "560.28.03"},
	{"12.6.2", "560.35.03"},
	{"12.6.3", "560.35.05"},
	{"12.8.0", "570.26"},
	{"12.8.1", "570.124.06"},
	{"12.9.0", "575.51.03"},
	{"12.9.1", "575.57.08"},
	{"13.0.0", "580.65.06"},
	{"13.0.1", "580.82.07"},
	{"13.0.2", "580.95.05"},
	{"13.1.0", "590.44.01"},
	{"13.1.1", "590.48.01"},
	{"13.2.0", "595.45.04"},
	{"13.2.1", "595.58.03"},
	{"13.3", "610.43.02"},
}

// MaxCUDA returns the newest CUDA toolkit whose minimum driver v meets, or
// false for a driver older than CUDA 10.0's minimum. Newer minor releases of
// the same CUDA major may still run through minor-version compatibility; this
// is the release-notes table only.
func MaxCUDA(v Version) (string, bool) {
	best := ""
	for _, row := range cudaMinDrivers {
		if v.AtLeast(row.minDriver) {
			best = row.cuda
		}
	}
	return best, best != ""
}
