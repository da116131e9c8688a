/* vk-info: the Vulkan loader (libvulkan.so.1) finds NVIDIA's ICD through
 * nvidia_icd.json, enumerates the physical devices, prints the NVIDIA one's
 * name, vendor and driver (VkPhysicalDeviceDriverProperties) and creates a
 * logical device with one queue on it. Headless: no surface extension.
 * Prints "PASS: ..." and exits 0, or "FAIL: ..." and exits 1. */
#include <stdio.h>
#include <string.h>
#include <vulkan/vulkan.h>

int main(void) {
	VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "gpuimg gpu-e2e",
		.apiVersion = VK_API_VERSION_1_2};
	VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
	VkInstance instance;
	VkResult r = vkCreateInstance(&ici, NULL, &instance);
	if (r != VK_SUCCESS) {
		printf("FAIL: vkCreateInstance: VkResult %d\n", r);
		return 1;
	}
	VkPhysicalDevice devices[16];
	uint32_t n = 16;
	r = vkEnumeratePhysicalDevices(instance, &n, devices);
	if ((r != VK_SUCCESS && r != VK_INCOMPLETE) || n == 0) {
		printf("FAIL: vkEnumeratePhysicalDevices: VkResult %d, %u device(s)\n", r, n);
		return 1;
	}
	for (uint32_t i = 0; i < n; i++) {
		VkPhysicalDeviceDriverProperties driver = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
		VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &driver};
		vkGetPhysicalDeviceProperties2(devices[i], &props);
		VkPhysicalDeviceProperties *p = &props.properties;
		printf("device %u of %u: %s, vendor 0x%04x, driver %s %s, Vulkan %u.%u.%u\n", i, n, p->deviceName, p->vendorID,
			driver.driverName, driver.driverInfo, VK_API_VERSION_MAJOR(p->apiVersion), VK_API_VERSION_MINOR(p->apiVersion),
			VK_API_VERSION_PATCH(p->apiVersion));
		if (p->vendorID != 0x10de)
			continue;
		float priority = 1.0f;
		VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = 0,
			.queueCount = 1, .pQueuePriorities = &priority};
		VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci};
		VkDevice device;
		r = vkCreateDevice(devices[i], &dci, NULL, &device);
		if (r != VK_SUCCESS) {
			printf("FAIL: vkCreateDevice on %s: VkResult %d\n", p->deviceName, r);
			return 1;
		}
		vkDestroyDevice(device, NULL);
		printf("PASS: Vulkan device %s (vendor 0x%04x), driver %s %s, logical device created\n", p->deviceName,
			p->vendorID, driver.driverName, driver.driverInfo);
		vkDestroyInstance(instance, NULL);
		return 0;
	}
	printf("FAIL: no NVIDIA (0x10de) Vulkan device among %u\n", n);
	return 1;
}
