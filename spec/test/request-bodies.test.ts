import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeErrors, schemaValidator, type JsonObject } from './spec-ajv.ts';

const seed = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'seed-requests.json'), 'utf8')) as Record<string, JsonObject>;

const user = { communicationUser: { id: '8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776_00000005-4f83-d4b7-a7ac-473a0d00d0c1' } };
const phone = { phoneNumber: { value: '+14251001000' } };

/** The seed's placeholders filled in: null identifiers become a user, "string" URIs absolute URIs. */
function fillPlaceholders(body: JsonObject): JsonObject {
  const filled: JsonObject = structuredClone(body);
  for (const key of ['targets', 'participants']) {
    if (Array.isArray(filled[key])) filled[key] = filled[key].map((item) => item ?? user);
  }
  if (filled.callbackUri === 'string') filled.callbackUri = 'https://app.contoso.com/api/callbacks';
  if (filled.audioFileUri === 'string') filled.audioFileUri = 'https://media.contoso.com/prompts/reminder.wav';
  return filled;
}

const schemaOf: Record<string, string> = {
  createCall: 'CreateCallRequest',
  playAudio: 'PlayAudioRequest',
  cancelMediaProcessing: 'CancelMediaProcessingRequest',
  inviteParticipants: 'InviteParticipantsRequest',
};

describe("the seed's requests", () => {
  it.each(Object.keys(schemaOf))('%s validates once its placeholders are filled', (operation) => {
    const validate = schemaValidator(schemaOf[operation]!);
    expect(validate(fillPlaceholders(seed[operation]!)), describeErrors(validate.errors).join(', ')).toBe(true);
  });

  it('fail as written only at the placeholders', () => {
    const createCall = schemaValidator('CreateCallRequest');
    createCall(seed.createCall);
    expect(new Set(describeErrors(createCall.errors).map((e) => e.split(' at ')[1]))).toEqual(new Set(['/targets/0', '/callbackUri']));
    const playAudio = schemaValidator('PlayAudioRequest');
    playAudio(seed.playAudio);
    expect(new Set(describeErrors(playAudio.errors).map((e) => e.split(' at ')[1]))).toEqual(new Set(['/audioFileUri']));
  });
});

const validCall = {
  targets: [phone],
  callbackUri: 'https://app.contoso.com/api/callbacks',
  requestedModalities: ['audio'],
  requestedCallEvents: ['participantsUpdated'],
};

interface InvalidCase {
  name: string;
  schema: string;
  body: unknown;
  /** The Ajv keyword and the JSON pointer of the rule the body breaks. */
  expected: string;
}

const invalid: InvalidCase[] = [
  { name: 'empty targets', schema: 'CreateCallRequest', body: { ...validCall, targets: [] }, expected: 'minItems at /targets' },
  { name: 'too many targets', schema: 'CreateCallRequest', body: { ...validCall, targets: Array(21).fill(phone) }, expected: 'maxItems at /targets' },
  { name: 'an identifier of two kinds', schema: 'CreateCallRequest', body: { ...validCall, targets: [{ ...user, ...phone }] }, expected: 'oneOf at /targets/0' },
  { name: 'an identifier of no kind', schema: 'CreateCallRequest', body: { ...validCall, targets: [{ rawId: '4:+14251001000' }] }, expected: 'oneOf at /targets/0' },
  { name: 'an unknown field', schema: 'CreateCallRequest', body: { ...validCall, callbackUrl: 'https://x.example/' }, expected: 'additionalProperties at /callbackUrl' },
  { name: 'an unknown field in an identifier', schema: 'CreateCallRequest', body: { ...validCall, targets: [{ phoneNumber: { value: '+14251001000', ext: '12' } }] }, expected: 'oneOf at /targets/0' },
  { name: 'a wrong modality', schema: 'CreateCallRequest', body: { ...validCall, requestedModalities: ['hologram'] }, expected: 'enum at /requestedModalities/0' },
  { name: 'a wrong event subscription', schema: 'CreateCallRequest', body: { ...validCall, requestedCallEvents: ['ParticipantsUpdated'] }, expected: 'enum at /requestedCallEvents/0' },
  { name: 'a repeated modality', schema: 'CreateCallRequest', body: { ...validCall, requestedModalities: ['audio', 'audio'] }, expected: 'uniqueItems at /requestedModalities' },
  { name: 'no modality', schema: 'CreateCallRequest', body: { ...validCall, requestedModalities: [] }, expected: 'minItems at /requestedModalities' },
  { name: 'an over-long subject', schema: 'CreateCallRequest', body: { ...validCall, subject: 'x'.repeat(257) }, expected: 'maxLength at /subject' },
  { name: 'a missing callbackUri', schema: 'CreateCallRequest', body: { ...validCall, callbackUri: undefined }, expected: 'required at /callbackUri' },
  { name: 'a missing requestedCallEvents', schema: 'CreateCallRequest', body: { ...validCall, requestedCallEvents: undefined }, expected: 'required at /requestedCallEvents' },
  { name: 'a relative callbackUri', schema: 'CreateCallRequest', body: { ...validCall, callbackUri: '/api/callbacks' }, expected: 'format at /callbackUri' },
  { name: 'a non-http callbackUri', schema: 'CreateCallRequest', body: { ...validCall, callbackUri: 'ftp://files.contoso.com/x' }, expected: 'pattern at /callbackUri' },
  { name: 'a phone number that is not E.164', schema: 'CreateCallRequest', body: { ...validCall, targets: [{ phoneNumber: { value: '425-100-1000' } }] }, expected: 'oneOf at /targets/0' },
  { name: 'an alternate caller id that is not E.164', schema: 'CreateCallRequest', body: { ...validCall, alternateCallerId: { value: '0800 555' } }, expected: 'pattern at /alternateCallerId/value' },
  { name: 'a body that is an array', schema: 'CreateCallRequest', body: [validCall], expected: 'type at /' },
  { name: 'a missing audioFileUri', schema: 'PlayAudioRequest', body: { loop: false }, expected: 'required at /audioFileUri' },
  { name: 'loop as a string', schema: 'PlayAudioRequest', body: { audioFileUri: 'https://m.contoso.com/a.wav', loop: 'true' }, expected: 'type at /loop' },
  { name: 'an over-long operationContext', schema: 'PlayAudioRequest', body: { audioFileUri: 'https://m.contoso.com/a.wav', operationContext: 'x'.repeat(513) }, expected: 'maxLength at /operationContext' },
  { name: 'an unknown field in a cancellation', schema: 'CancelMediaProcessingRequest', body: { operationContext: 'x', force: true }, expected: 'additionalProperties at /force' },
  { name: 'empty participants', schema: 'InviteParticipantsRequest', body: { participants: [] }, expected: 'minItems at /participants' },
  { name: 'a missing participants', schema: 'InviteParticipantsRequest', body: { operationContext: 'x' }, expected: 'required at /participants' },
  { name: 'a Teams user in an unknown cloud', schema: 'InviteParticipantsRequest', body: { participants: [{ microsoftTeamsUser: { userId: '0f2c3c4e-9a8b-4d6e-8f7a-1b2c3d4e5f60', cloud: 'mars' } }] }, expected: 'oneOf at /participants/0' },
];

describe('invalid request bodies are rejected for the reason named', () => {
  it.each(invalid.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const validate = schemaValidator(c.schema);
    const body = JSON.parse(JSON.stringify(c.body)) as unknown; // drops the undefined fields
    expect(validate(body)).toBe(false);
    expect(describeErrors(validate.errors)).toContain(c.expected);
  });

  it('an identifier of two kinds fails every branch, not only one', () => {
    const validate = schemaValidator('CommunicationIdentifier');
    expect(validate({ ...user, ...phone })).toBe(false);
    const errors = describeErrors(validate.errors);
    // The user branch refuses the phone number, the phone branch the user, and the Teams branch both.
    expect(errors.filter((e) => e === 'additionalProperties at /phoneNumber')).toHaveLength(2);
    expect(errors.filter((e) => e === 'additionalProperties at /communicationUser')).toHaveLength(2);
    expect(errors).toContain('oneOf at /');
  });
});
