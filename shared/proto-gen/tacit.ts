import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { Ack as _tacit_v1_Ack, Ack__Output as _tacit_v1_Ack__Output } from './tacit/v1/Ack.ts';
import type { AdvertiseKeysRequest as _tacit_v1_AdvertiseKeysRequest, AdvertiseKeysRequest__Output as _tacit_v1_AdvertiseKeysRequest__Output } from './tacit/v1/AdvertiseKeysRequest.ts';
import type { AdvertisedKeys as _tacit_v1_AdvertisedKeys, AdvertisedKeys__Output as _tacit_v1_AdvertisedKeys__Output } from './tacit/v1/AdvertisedKeys.ts';
import type { AttestationRequest as _tacit_v1_AttestationRequest, AttestationRequest__Output as _tacit_v1_AttestationRequest__Output } from './tacit/v1/AttestationRequest.ts';
import type { CohortMember as _tacit_v1_CohortMember, CohortMember__Output as _tacit_v1_CohortMember__Output } from './tacit/v1/CohortMember.ts';
import type { CohortProof as _tacit_v1_CohortProof, CohortProof__Output as _tacit_v1_CohortProof__Output } from './tacit/v1/CohortProof.ts';
import type { ConsistencyCheck as _tacit_v1_ConsistencyCheck, ConsistencyCheck__Output as _tacit_v1_ConsistencyCheck__Output } from './tacit/v1/ConsistencyCheck.ts';
import type { CreateTokenRequest as _tacit_v1_CreateTokenRequest, CreateTokenRequest__Output as _tacit_v1_CreateTokenRequest__Output } from './tacit/v1/CreateTokenRequest.ts';
import type { CreateTokenResponse as _tacit_v1_CreateTokenResponse, CreateTokenResponse__Output as _tacit_v1_CreateTokenResponse__Output } from './tacit/v1/CreateTokenResponse.ts';
import type { DeclineRequest as _tacit_v1_DeclineRequest, DeclineRequest__Output as _tacit_v1_DeclineRequest__Output } from './tacit/v1/DeclineRequest.ts';
import type { DeregisterRequest as _tacit_v1_DeregisterRequest, DeregisterRequest__Output as _tacit_v1_DeregisterRequest__Output } from './tacit/v1/DeregisterRequest.ts';
import type { DeregisterResponse as _tacit_v1_DeregisterResponse, DeregisterResponse__Output as _tacit_v1_DeregisterResponse__Output } from './tacit/v1/DeregisterResponse.ts';
import type { EncryptedShare as _tacit_v1_EncryptedShare, EncryptedShare__Output as _tacit_v1_EncryptedShare__Output } from './tacit/v1/EncryptedShare.ts';
import type { EnrollRequest as _tacit_v1_EnrollRequest, EnrollRequest__Output as _tacit_v1_EnrollRequest__Output } from './tacit/v1/EnrollRequest.ts';
import type { EnrollResponse as _tacit_v1_EnrollResponse, EnrollResponse__Output as _tacit_v1_EnrollResponse__Output } from './tacit/v1/EnrollResponse.ts';
import type { EnrollmentClient as _tacit_v1_EnrollmentClient, EnrollmentDefinition as _tacit_v1_EnrollmentDefinition } from './tacit/v1/Enrollment.ts';
import type { GetPolicyRequest as _tacit_v1_GetPolicyRequest, GetPolicyRequest__Output as _tacit_v1_GetPolicyRequest__Output } from './tacit/v1/GetPolicyRequest.ts';
import type { GetRunRequest as _tacit_v1_GetRunRequest, GetRunRequest__Output as _tacit_v1_GetRunRequest__Output } from './tacit/v1/GetRunRequest.ts';
import type { Heartbeat as _tacit_v1_Heartbeat, Heartbeat__Output as _tacit_v1_Heartbeat__Output } from './tacit/v1/Heartbeat.ts';
import type { KeyRoster as _tacit_v1_KeyRoster, KeyRoster__Output as _tacit_v1_KeyRoster__Output } from './tacit/v1/KeyRoster.ts';
import type { LaunchRunRequest as _tacit_v1_LaunchRunRequest, LaunchRunRequest__Output as _tacit_v1_LaunchRunRequest__Output } from './tacit/v1/LaunchRunRequest.ts';
import type { LedgerClient as _tacit_v1_LedgerClient, LedgerDefinition as _tacit_v1_LedgerDefinition } from './tacit/v1/Ledger.ts';
import type { LedgerLine as _tacit_v1_LedgerLine, LedgerLine__Output as _tacit_v1_LedgerLine__Output } from './tacit/v1/LedgerLine.ts';
import type { ListRunsRequest as _tacit_v1_ListRunsRequest, ListRunsRequest__Output as _tacit_v1_ListRunsRequest__Output } from './tacit/v1/ListRunsRequest.ts';
import type { ListRunsResponse as _tacit_v1_ListRunsResponse, ListRunsResponse__Output as _tacit_v1_ListRunsResponse__Output } from './tacit/v1/ListRunsResponse.ts';
import type { MaskedInputRequest as _tacit_v1_MaskedInputRequest, MaskedInputRequest__Output as _tacit_v1_MaskedInputRequest__Output } from './tacit/v1/MaskedInputRequest.ts';
import type { PolicyFile as _tacit_v1_PolicyFile, PolicyFile__Output as _tacit_v1_PolicyFile__Output } from './tacit/v1/PolicyFile.ts';
import type { ReadLedgerRequest as _tacit_v1_ReadLedgerRequest, ReadLedgerRequest__Output as _tacit_v1_ReadLedgerRequest__Output } from './tacit/v1/ReadLedgerRequest.ts';
import type { RevealedShare as _tacit_v1_RevealedShare, RevealedShare__Output as _tacit_v1_RevealedShare__Output } from './tacit/v1/RevealedShare.ts';
import type { RoundInvite as _tacit_v1_RoundInvite, RoundInvite__Output as _tacit_v1_RoundInvite__Output } from './tacit/v1/RoundInvite.ts';
import type { RoundOutcome as _tacit_v1_RoundOutcome, RoundOutcome__Output as _tacit_v1_RoundOutcome__Output } from './tacit/v1/RoundOutcome.ts';
import type { RoundRef as _tacit_v1_RoundRef, RoundRef__Output as _tacit_v1_RoundRef__Output } from './tacit/v1/RoundRef.ts';
import type { RoundSummary as _tacit_v1_RoundSummary, RoundSummary__Output as _tacit_v1_RoundSummary__Output } from './tacit/v1/RoundSummary.ts';
import type { RoundsClient as _tacit_v1_RoundsClient, RoundsDefinition as _tacit_v1_RoundsDefinition } from './tacit/v1/Rounds.ts';
import type { RunControlClient as _tacit_v1_RunControlClient, RunControlDefinition as _tacit_v1_RunControlDefinition } from './tacit/v1/RunControl.ts';
import type { RunStatus as _tacit_v1_RunStatus, RunStatus__Output as _tacit_v1_RunStatus__Output } from './tacit/v1/RunStatus.ts';
import type { ServerEvent as _tacit_v1_ServerEvent, ServerEvent__Output as _tacit_v1_ServerEvent__Output } from './tacit/v1/ServerEvent.ts';
import type { ShareInbox as _tacit_v1_ShareInbox, ShareInbox__Output as _tacit_v1_ShareInbox__Output } from './tacit/v1/ShareInbox.ts';
import type { ShareKeysRequest as _tacit_v1_ShareKeysRequest, ShareKeysRequest__Output as _tacit_v1_ShareKeysRequest__Output } from './tacit/v1/ShareKeysRequest.ts';
import type { SignSurvivorsRequest as _tacit_v1_SignSurvivorsRequest, SignSurvivorsRequest__Output as _tacit_v1_SignSurvivorsRequest__Output } from './tacit/v1/SignSurvivorsRequest.ts';
import type { SubscribeRequest as _tacit_v1_SubscribeRequest, SubscribeRequest__Output as _tacit_v1_SubscribeRequest__Output } from './tacit/v1/SubscribeRequest.ts';
import type { SurvivorSignature as _tacit_v1_SurvivorSignature, SurvivorSignature__Output as _tacit_v1_SurvivorSignature__Output } from './tacit/v1/SurvivorSignature.ts';
import type { UnmaskRequest as _tacit_v1_UnmaskRequest, UnmaskRequest__Output as _tacit_v1_UnmaskRequest__Output } from './tacit/v1/UnmaskRequest.ts';
import type { UnmaskingRequest as _tacit_v1_UnmaskingRequest, UnmaskingRequest__Output as _tacit_v1_UnmaskingRequest__Output } from './tacit/v1/UnmaskingRequest.ts';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  tacit: {
    v1: {
      Ack: MessageTypeDefinition<_tacit_v1_Ack, _tacit_v1_Ack__Output>
      AdvertiseKeysRequest: MessageTypeDefinition<_tacit_v1_AdvertiseKeysRequest, _tacit_v1_AdvertiseKeysRequest__Output>
      AdvertisedKeys: MessageTypeDefinition<_tacit_v1_AdvertisedKeys, _tacit_v1_AdvertisedKeys__Output>
      AttestationRequest: MessageTypeDefinition<_tacit_v1_AttestationRequest, _tacit_v1_AttestationRequest__Output>
      CohortMember: MessageTypeDefinition<_tacit_v1_CohortMember, _tacit_v1_CohortMember__Output>
      CohortProof: MessageTypeDefinition<_tacit_v1_CohortProof, _tacit_v1_CohortProof__Output>
      ConsistencyCheck: MessageTypeDefinition<_tacit_v1_ConsistencyCheck, _tacit_v1_ConsistencyCheck__Output>
      CreateTokenRequest: MessageTypeDefinition<_tacit_v1_CreateTokenRequest, _tacit_v1_CreateTokenRequest__Output>
      CreateTokenResponse: MessageTypeDefinition<_tacit_v1_CreateTokenResponse, _tacit_v1_CreateTokenResponse__Output>
      DeclineRequest: MessageTypeDefinition<_tacit_v1_DeclineRequest, _tacit_v1_DeclineRequest__Output>
      DeregisterRequest: MessageTypeDefinition<_tacit_v1_DeregisterRequest, _tacit_v1_DeregisterRequest__Output>
      DeregisterResponse: MessageTypeDefinition<_tacit_v1_DeregisterResponse, _tacit_v1_DeregisterResponse__Output>
      EncryptedShare: MessageTypeDefinition<_tacit_v1_EncryptedShare, _tacit_v1_EncryptedShare__Output>
      EnrollRequest: MessageTypeDefinition<_tacit_v1_EnrollRequest, _tacit_v1_EnrollRequest__Output>
      EnrollResponse: MessageTypeDefinition<_tacit_v1_EnrollResponse, _tacit_v1_EnrollResponse__Output>
      Enrollment: SubtypeConstructor<typeof grpc.Client, _tacit_v1_EnrollmentClient> & { service: _tacit_v1_EnrollmentDefinition }
      GetPolicyRequest: MessageTypeDefinition<_tacit_v1_GetPolicyRequest, _tacit_v1_GetPolicyRequest__Output>
      GetRunRequest: MessageTypeDefinition<_tacit_v1_GetRunRequest, _tacit_v1_GetRunRequest__Output>
      Heartbeat: MessageTypeDefinition<_tacit_v1_Heartbeat, _tacit_v1_Heartbeat__Output>
      KeyRoster: MessageTypeDefinition<_tacit_v1_KeyRoster, _tacit_v1_KeyRoster__Output>
      LaunchRunRequest: MessageTypeDefinition<_tacit_v1_LaunchRunRequest, _tacit_v1_LaunchRunRequest__Output>
      Ledger: SubtypeConstructor<typeof grpc.Client, _tacit_v1_LedgerClient> & { service: _tacit_v1_LedgerDefinition }
      LedgerLine: MessageTypeDefinition<_tacit_v1_LedgerLine, _tacit_v1_LedgerLine__Output>
      ListRunsRequest: MessageTypeDefinition<_tacit_v1_ListRunsRequest, _tacit_v1_ListRunsRequest__Output>
      ListRunsResponse: MessageTypeDefinition<_tacit_v1_ListRunsResponse, _tacit_v1_ListRunsResponse__Output>
      MaskedInputRequest: MessageTypeDefinition<_tacit_v1_MaskedInputRequest, _tacit_v1_MaskedInputRequest__Output>
      PolicyFile: MessageTypeDefinition<_tacit_v1_PolicyFile, _tacit_v1_PolicyFile__Output>
      ReadLedgerRequest: MessageTypeDefinition<_tacit_v1_ReadLedgerRequest, _tacit_v1_ReadLedgerRequest__Output>
      RevealedShare: MessageTypeDefinition<_tacit_v1_RevealedShare, _tacit_v1_RevealedShare__Output>
      RoundInvite: MessageTypeDefinition<_tacit_v1_RoundInvite, _tacit_v1_RoundInvite__Output>
      RoundOutcome: MessageTypeDefinition<_tacit_v1_RoundOutcome, _tacit_v1_RoundOutcome__Output>
      RoundRef: MessageTypeDefinition<_tacit_v1_RoundRef, _tacit_v1_RoundRef__Output>
      RoundSummary: MessageTypeDefinition<_tacit_v1_RoundSummary, _tacit_v1_RoundSummary__Output>
      Rounds: SubtypeConstructor<typeof grpc.Client, _tacit_v1_RoundsClient> & { service: _tacit_v1_RoundsDefinition }
      RunControl: SubtypeConstructor<typeof grpc.Client, _tacit_v1_RunControlClient> & { service: _tacit_v1_RunControlDefinition }
      RunStatus: MessageTypeDefinition<_tacit_v1_RunStatus, _tacit_v1_RunStatus__Output>
      ServerEvent: MessageTypeDefinition<_tacit_v1_ServerEvent, _tacit_v1_ServerEvent__Output>
      ShareInbox: MessageTypeDefinition<_tacit_v1_ShareInbox, _tacit_v1_ShareInbox__Output>
      ShareKeysRequest: MessageTypeDefinition<_tacit_v1_ShareKeysRequest, _tacit_v1_ShareKeysRequest__Output>
      SignSurvivorsRequest: MessageTypeDefinition<_tacit_v1_SignSurvivorsRequest, _tacit_v1_SignSurvivorsRequest__Output>
      SubscribeRequest: MessageTypeDefinition<_tacit_v1_SubscribeRequest, _tacit_v1_SubscribeRequest__Output>
      SurvivorSignature: MessageTypeDefinition<_tacit_v1_SurvivorSignature, _tacit_v1_SurvivorSignature__Output>
      UnmaskRequest: MessageTypeDefinition<_tacit_v1_UnmaskRequest, _tacit_v1_UnmaskRequest__Output>
      UnmaskingRequest: MessageTypeDefinition<_tacit_v1_UnmaskingRequest, _tacit_v1_UnmaskingRequest__Output>
    }
  }
}

