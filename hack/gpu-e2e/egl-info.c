/* egl-info: headless OpenGL on the NVIDIA device through EGL (libglvnd's
 * libEGL, NVIDIA's vendor library): picks the EGL device whose display's
 * vendor is NVIDIA (EGL_EXT_platform_device, no X, no DRM node), makes a
 * pbuffer context current, clears it to a known colour, reads a pixel back
 * and prints the EGL vendor and GL vendor/renderer/version.
 * Prints "PASS: ..." and exits 0, or "FAIL: ..." and exits 1. */
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GL/gl.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what) {
	printf("FAIL: %s (EGL error 0x%x)\n", what, eglGetError());
	return 1;
}

int main(void) {
	PFNEGLQUERYDEVICESEXTPROC queryDevices = (PFNEGLQUERYDEVICESEXTPROC)eglGetProcAddress("eglQueryDevicesEXT");
	PFNEGLGETPLATFORMDISPLAYEXTPROC platformDisplay = (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
	if (!queryDevices || !platformDisplay)
		return fail("no EGL_EXT_device_enumeration / EGL_EXT_platform_base: no vendor library was loaded");
	EGLDeviceEXT devices[16];
	EGLint n = 0;
	if (!queryDevices(16, devices, &n) || n == 0)
		return fail("eglQueryDevicesEXT found no EGL device");
	EGLDisplay dpy = EGL_NO_DISPLAY;
	const char *vendor = NULL;
	for (EGLint i = 0; i < n && dpy == EGL_NO_DISPLAY; i++) {
		EGLDisplay d = platformDisplay(EGL_PLATFORM_DEVICE_EXT, devices[i], NULL);
		EGLint major, minor;
		if (d == EGL_NO_DISPLAY || !eglInitialize(d, &major, &minor))
			continue;
		const char *v = eglQueryString(d, EGL_VENDOR);
		if (v && strstr(v, "NVIDIA")) {
			dpy = d, vendor = v;
			printf("EGL %d.%d on device %d of %d: vendor %s\n", major, minor, i, n, v);
		} else {
			eglTerminate(d);
		}
	}
	if (dpy == EGL_NO_DISPLAY)
		return fail("no EGL device display with vendor NVIDIA");
	if (!eglBindAPI(EGL_OPENGL_API))
		return fail("eglBindAPI(EGL_OPENGL_API)");
	const EGLint configAttrs[] = {EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT,
		EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8, EGL_ALPHA_SIZE, 8, EGL_NONE};
	EGLConfig config;
	EGLint configs = 0;
	if (!eglChooseConfig(dpy, configAttrs, &config, 1, &configs) || configs == 0)
		return fail("eglChooseConfig: no RGBA8 pbuffer config");
	const EGLint pbufferAttrs[] = {EGL_WIDTH, 64, EGL_HEIGHT, 64, EGL_NONE};
	EGLSurface surface = eglCreatePbufferSurface(dpy, config, pbufferAttrs);
	if (surface == EGL_NO_SURFACE)
		return fail("eglCreatePbufferSurface");
	EGLContext ctx = eglCreateContext(dpy, config, EGL_NO_CONTEXT, NULL);
	if (ctx == EGL_NO_CONTEXT)
		return fail("eglCreateContext");
	if (!eglMakeCurrent(dpy, surface, surface, ctx))
		return fail("eglMakeCurrent");
	glClearColor(0.25f, 0.5f, 0.75f, 1.0f);
	glClear(GL_COLOR_BUFFER_BIT);
	unsigned char px[4] = {0};
	glReadPixels(32, 32, 1, 1, GL_RGBA, GL_UNSIGNED_BYTE, px);
	glFinish();
	const char *glVendor = (const char *)glGetString(GL_VENDOR);
	const char *renderer = (const char *)glGetString(GL_RENDERER);
	const char *version = (const char *)glGetString(GL_VERSION);
	int rendered = px[0] >= 63 && px[0] <= 65 && px[1] >= 127 && px[1] <= 129 && px[2] >= 190 && px[2] <= 192;
	printf("%s: EGL vendor %s; GL_VENDOR %s; GL_RENDERER %s; GL_VERSION %s; cleared pixel %d,%d,%d,%d\n",
		rendered && renderer ? "PASS" : "FAIL", vendor, glVendor ? glVendor : "(null)",
		renderer ? renderer : "(null)", version ? version : "(null)", px[0], px[1], px[2], px[3]);
	eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
	eglTerminate(dpy);
	return rendered && renderer ? 0 : 1;
}
