// Pods through containerd's own CRI plugin, spoken to as kubelet does (test/helpers/cri.ts): runbox's emulated
// driver (handler `runbox`), beside runc's handler as the reference for what a user sees.
import { podTests, sharedCriEnv } from './helpers/cri-pod-cases.js';

const env = sharedCriEnv();
podTests('runc', env);
podTests('runbox', env);
