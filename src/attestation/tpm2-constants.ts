// The TPM 2.0 numbers runbox uses (TCG TPM 2.0 Library, Part 2: Structures), named as the specification names them.

export const TPM_ST = {
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
  ATTEST_QUOTE: 0x8018,
} as const;

/** Every TPMS_ATTEST the TPM signs starts with this (TPM_GENERATED_VALUE): it cannot be fed to the key from outside. */
export const TPM_GENERATED_VALUE = 0xff544347;

export const TPM_CC = {
  NV_DefineSpace: 0x12a,
  EvictControl: 0x120,
  CreatePrimary: 0x131,
  NV_Write: 0x137,
  Startup: 0x144,
  ActivateCredential: 0x147,
  NV_Read: 0x14e,
  PolicySecret: 0x151,
  ECDH_ZGen: 0x154,
  Quote: 0x158,
  FlushContext: 0x165,
  NV_ReadPublic: 0x169,
  ReadPublic: 0x173,
  StartAuthSession: 0x176,
  PCR_Read: 0x17e,
  PCR_Extend: 0x182,
} as const;

export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  /** The password session: an authorization with the entity's authValue in clear (empty here). */
  RS_PW: 0x40000009,
  ENDORSEMENT: 0x4000000b,
  PLATFORM: 0x4000000c,
} as const;

export const TPM_ALG = {
  RSA: 0x0001,
  AES: 0x0006,
  SHA256: 0x000b,
  NULL: 0x0010,
  RSASSA: 0x0014,
  ECDSA: 0x0018,
  ECC: 0x0023,
  CFB: 0x0043,
} as const;

export const TPM_ECC_NIST_P256 = 0x0003;

/** TPMA_OBJECT bits. */
export const TPMA_OBJECT = {
  fixedTPM: 1 << 1,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

/** TPMA_NV bits. */
export const TPMA_NV = {
  PPWRITE: 1 << 0,
  WRITEDEFINE: 1 << 13,
  PPREAD: 1 << 16,
  OWNERREAD: 1 << 17,
  AUTHREAD: 1 << 18,
  NO_DA: 1 << 25,
  PLATFORMCREATE: 1 << 30,
} as const;

/** TPM_SU: how TPM2_Startup starts the TPM. */
export const TPM_SU_CLEAR = 0x0000;

/** The session types of TPM2_StartAuthSession. */
export const TPM_SE_POLICY = 0x01;

/** The response codes the messages name. */
const RC_NAMES: Record<number, string> = {
  0x100: 'TPM_RC_INITIALIZE',
  0x101: 'TPM_RC_FAILURE',
  0x14c: 'TPM_RC_NV_DEFINED',
  0x143: 'TPM_RC_COMMAND_CODE',
  0x14b: 'TPM_RC_NV_RANGE',
  0x149: 'TPM_RC_NV_LOCKED',
  0x14a: 'TPM_RC_NV_AUTHORIZATION',
  0x902: 'TPM_RC_OBJECT_MEMORY',
  0x903: 'TPM_RC_SESSION_MEMORY',
  0x922: 'TPM_RC_RETRY',
};

/** A TPM response code as TCG names it when it is one of those above, with its number. */
export function rcName(rc: number): string {
  const name = RC_NAMES[rc] ?? (rc & 0x80 ? `TPM_RC format 1, error 0x${(rc & 0x3f).toString(16)}` : undefined);
  return `0x${rc.toString(16).padStart(3, '0')}${name ? ` (${name})` : ''}`;
}
