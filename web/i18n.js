// The message catalog. English and German; by default the browser's preference decides, and
// the language switch on the page changes every text at once without a reload.
//
// Every text the page shows comes from here. Keys are the same in every language; a key
// missing from a language falls back to English. Static texts are marked in index.html
// (`data-i18n` for the text, `data-i18n-aria-label` for an accessible name); modules that
// draw texts themselves redraw them from `onLocaleChange`.

/** @typedef {'en' | 'de'} Locale */

/** Every locale the page offers, in the order of the language switch. */
export const LOCALES = /** @type {const} */ (['en', 'de']);

const en = {
  title: 'Conclave',
  tagline: 'Confidential video meetings',
  languageLabel: 'Language / Sprache',
  languageEnglish: 'English',
  languageGerman: 'Deutsch',
  newMeeting: 'New meeting',
  meetingReady: 'Your meeting is ready',
  meetingReadyHint: 'Send this link to the people you want to meet. Anyone with the link can join.',
  meetingLink: 'Meeting link',
  copyLink: 'Copy link',
  linkCopied: 'Link copied.',
  linkSelected: 'The link is selected: press Ctrl+C (⌘C on a Mac) to copy it.',
  goToMeeting: 'Go to the meeting',
  joinExistingLabel: 'Meeting ID or link',
  joinExisting: 'Open',
  invalidRoom: 'That is not a meeting ID or link.',
  prejoinHeading: 'Ready to join?',
  meetingHeading: 'Meeting',
  name: 'Name',
  microphone: 'Microphone',
  camera: 'Camera',
  devices: 'Devices',
  chooseMicrophone: 'Choose microphone',
  chooseCamera: 'Choose camera',
  defaultMicrophone: 'Default microphone',
  defaultCamera: 'Default camera',
  unnamedMicrophone: 'Microphone {n}',
  unnamedCamera: 'Camera {n}',
  microphoneLevel: 'Microphone level',
  cameraIsOff: 'Camera is off',
  audioOnly: 'Audio only (no video)',
  join: 'Join',
  joinWithoutDevices: 'Join without devices',
  joinWithoutDevicesHint: 'Without devices you see and hear the others, and nobody sees or hears you.',
  leave: 'Leave',
  controls: 'Meeting controls',
  participants: 'Participants',
  participantsCount: 'Participants ({count})',
  you: 'You',
  nameYou: '{name} (you)',
  muted: 'Muted',
  connecting: 'Connecting…',
  alone: 'Nobody else is here yet. Copy the link of this page to invite others.',
  youJoined: 'You joined the meeting.',
  personJoined: '{name} joined',
  personLeft: '{name} left',
  left: 'You left the meeting.',
  ended: 'The meeting connection ended: {reason}',
  reasonDisconnected: 'the connection was lost.',
  reasonTimeout: 'the server heard nothing from this browser for too long.',
  reasonError: 'the server found an error.',
  reasonLeft: 'you left.',
  mediaUnsupported:
    'This browser offers no camera or microphone on this page. You can still join without devices to see and hear the others.',
  deniedMicrophone:
    'The browser blocked the microphone. Allow it in the site settings of this page, or join without devices.',
  deniedCamera:
    'The browser blocked the camera. Allow it in the site settings of this page, or join without devices.',
  notFoundMicrophone: 'No microphone was found.',
  notFoundCamera: 'No camera was found.',
  busyMicrophone: 'The microphone could not be started. Another program may be using it.',
  busyCamera: 'The camera could not be started. Another program may be using it.',
  failedMicrophone: 'Could not use the microphone: {error}',
  failedCamera: 'Could not use the camera: {error}',
  endedMicrophone: 'The microphone stopped working and was turned off.',
  endedCamera: 'The camera stopped working and was turned off.',
  serverError: 'Error {code}: {message}',
  home: 'Home',
  chat: 'Chat',
  chatNotStored: 'Messages are not stored: they are gone when you leave.',
  chatTo: 'To',
  chatEveryone: 'Everyone',
  chatMessage: 'Message',
  send: 'Send',
  chatUnread: '({count} unread)',
  chatFromYou: 'You',
  chatYouTo: 'You to {name}',
  chatPrivate: 'Private',
  chatNewMessage: 'New message from {name}',
  files: 'Files',
  fileSend: 'Send a file…',
  fileSendHint: 'The file goes to whoever "To" names, encrypted like chat. It is not stored: save it before you leave.',
  fileOfferedChat: 'sent a file: {name} ({size})',
  fileTo: 'to {name}',
  fileFrom: 'from {name}',
  fileSending: 'Sending… {percent} %',
  fileReceiving: 'Receiving… {percent} %',
  fileSent: 'Sent',
  fileReceived: 'Received and checked',
  fileProgress: 'Progress of {name}',
  fileCancel: 'Cancel',
  fileCancelNamed: 'Cancel {name}',
  fileSave: 'Save',
  fileSaveNamed: 'Save {name}',
  fileReady: '{name} was received and can be saved.',
  fileFailed: 'Failed',
  fileCancelledByYou: 'Cancelled.',
  fileCancelledBySender: 'The sender cancelled it.',
  fileCancelledByRecipients: 'Nobody wants it any more.',
  fileSenderLeft: 'The sender left.',
  fileRefused: 'The server stopped the transfer.',
  fileCorrupt: 'The file arrived damaged and was discarded.',
  fileUndecryptable: 'This file could not be decrypted.',
  fileNotEncrypted: 'This file was not encrypted and was refused.',
  fileSenderMismatch: 'This file does not come from who the server says; it was refused.',
  fileConnectionLost: 'The connection was lost.',
  fileSharingOff: 'File sharing is off on this server.',
  fileEmpty: 'That file is empty.',
  fileTooLarge: 'That file is too large: at most {max}.',
  fileTooMany: 'Wait until one of your files has been sent.',
  fileNotReady: 'The file cannot be encrypted yet. Try again in a moment.',
  fileRecipientNotReady: 'The file cannot be encrypted for {name} yet. Try again in a moment.',
  fileNotSent: 'The file could not be sent.',
  filesNotAllowed: 'Sharing files is turned off for you.',
  e2eeHeading: 'Encryption',
  e2eeStateEncrypted: 'End-to-end encrypted',
  e2eeStatePending: 'Not encrypted yet',
  e2eeStateUnverified: 'Unverified participant',
  e2eeStateOff: 'Not encrypted',
  e2eeExplainEncrypted: 'Audio, video, screen and chat are encrypted on each device with keys only the people listed below hold. The server cannot read them.',
  e2eeExplainPending: 'Agreeing keys with the others… Nothing is sent until then.',
  e2eeExplainUnverified: 'Someone holds the keys who is not in this meeting’s participant list. Say nothing confidential until everyone has compared the code below.',
  e2eeExplainOff: 'This server does not use end-to-end encryption: the server could read audio, video and chat.',
  e2eeSasIntro: 'Compare this code with the others, e.g. read it out. If it is the same for everyone, nobody else is listening in.',
  e2eeSasEpoch: 'Key epoch {epoch}. The code changes whenever someone joins or leaves.',
  e2eeConfirm: 'The codes match',
  e2eeVerifiedCount: '{verified} of {total} verified.',
  e2eeMembersHeading: 'Who holds the keys',
  e2eeYou: '{name} (you)',
  e2eeMemberVerified: 'verified',
  e2eeMemberUnverified: 'not verified',
  e2eeMemberUnknown: 'not in the meeting',
  e2eeMemberLeaving: 'leaving',
  e2eeMemberVerifiedAccount: 'verified: you compared the code with this account key',
  e2eeMemberForged: 'FORGED IDENTITY: the account signature does not check out',
  e2eeMemberNewKey: 'NEW KEY for this account: compare the code before trusting it',
  e2eeMemberAccount: '{name} (account {username})',
  e2eeOutside: 'Not in the encrypted group (they cannot see or hear anyone yet): {names}',
  e2eeReset: 'Reset encryption',
  e2eeResetHint: 'If keys are not agreed any more (e.g. someone sent broken key data), start the encryption anew for everyone. Everybody must compare the code again afterwards.',
  confirmE2eeReset: 'Reset the encryption for everyone? All keys are agreed anew and everybody has to compare the code again.',
  e2eeResetBy: '{name} reset the encryption: keys are agreed anew. Compare the new code again.',
  e2eeResetBySelf: 'You reset the encryption: keys are agreed anew. Compare the new code again.',
  e2eeResetByUnknown: 'A moderator reset the encryption: keys are agreed anew. Compare the new code again.',
  chatUndecryptable: '⚠ A message that could not be decrypted.',
  chatSenderMismatch: '⚠ Sender not confirmed: {text}',
  chatNotEncrypted: '⚠ Not encrypted: {text}',
  chatNotReady: 'Chat works once the encryption keys are agreed (a moment after joining).',
  chatRecipientNotReady: '{name} has no encryption keys yet, so a private message cannot be sealed for them. Try again in a moment.',
  errorE2eeUnsupported: 'This meeting is end-to-end encrypted, and this browser cannot encrypt audio and video (it lacks encoded transforms). Use a current Chromium, Chrome, Edge, Firefox or Safari.',
  errorE2eeNotEncrypting: 'Your video was stopped: this browser sent it without encrypting it. Reload the page to try again.',
  someone: 'Someone',
  raiseHand: 'Raise hand',
  handRaised: 'Hand raised',
  personRaisedHand: '{name} raised a hand',
  personLoweredHand: '{name} lowered their hand',
  youRaisedHand: 'You raised your hand.',
  youLoweredHand: 'You lowered your hand.',
  shareScreen: 'Share screen',
  screenOf: 'Screen of {name}',
  screenShareStarted: 'You are sharing your screen.',
  screenShareStopped: 'You stopped sharing your screen.',
  screenShareFailed: 'Could not share the screen: {error}',
  personSharesScreen: '{name} is sharing their screen',
  connectionLost: 'The connection was lost. Reconnecting…',
  reconnecting: 'Connection lost. Reconnecting…',
  reconnectingAttempt: 'Connection lost. Reconnecting… (attempt {n})',
  reconnected: 'Reconnected.',
  reconnectFailed: 'Could not reconnect. Check the network, then try again.',
  mediaFailed:
    'Audio and video cannot get through to the server from this network: signalling works, but the media connection failed {n} times in a row. The network probably blocks the ports the server uses for media. Try another network, or ask your IT to allow UDP and TCP port 443 to this server, then click Rejoin.',
  mediaFailedLoopbackFirefox:
    'Audio and video cannot connect: Firefox does not send media to 127.0.0.1. For a trial on this computer start Conclave with --media-bind-ip 0.0.0.0, or set media.peerconnection.ice.loopback to true in about:config, or use Chromium; then click Rejoin.',
  rejoin: 'Rejoin',
  screenShareEndedByLoss: 'Your screen sharing ended when the connection was lost. Share again if you like.',
  speaking: 'Speaking',
  speakerView: 'Speaker view',
  qualityGood: 'Good',
  qualityFair: 'Fair',
  qualityPoor: 'Poor',
  qualityLabel: 'Connection: {quality}',
  selfQualityLabel: 'Your connection: {quality}',
  badgeModerator: 'Moderator',
  badgeGuest: 'Guest',
  badgeSignedIn: 'Signed in',
  nameFromInvitation: 'You join with the name from your invitation.',
  roomPassword: 'Room password',
  newRoomPassword: 'New room password',
  reasonRemoved: 'a moderator removed you from the meeting.',
  reasonBanned: 'a moderator banned you from this meeting.',
  reasonEnded: 'a moderator ended the meeting for everyone.',
  reasonDenied: 'a moderator did not let you in.',
  endedWithMessage: 'The meeting connection ended: {reason} Message: “{message}”',
  errorBanned: 'A moderator banned you from this meeting. You cannot join it again.',
  errorRoomLocked: 'A moderator locked this meeting: nobody new can join now.',
  errorPasswordRequired: 'This meeting has a password. Enter it and join again.',
  errorWrongPassword: 'That password is wrong. Check it and try again.',
  errorTooManyAttempts: 'Too many attempts. Please wait before trying again. ({message})',
  errorSignInRequired: 'This server lets only signed-in people and holders of an invitation link join.',
  errorInvalidToken: 'The invitation link is not valid: {message}',
  errorForbidden: 'You are not allowed to do that: {message}',
  errorInvalidPassword: 'The password was not set: {message}',
  lobbyHeading: 'Waiting to be let in',
  lobbyHint: 'If you know the room password, you can enter it to join at once.',
  lobbyRetry: 'Join with password',
  lobbyCancel: 'Cancel',
  lobbyWaitingAnnounce: 'You are waiting to be let in.',
  lobbyButton: 'Lobby',
  lobbyCount: '({count} waiting)',
  knocksHeading: 'Waiting in the lobby',
  knocksEmpty: 'Nobody is waiting.',
  admit: 'Admit',
  deny: 'Deny',
  denyMessage: 'Message when denying (optional)',
  actionFor: '{action}: {name}',
  personKnocks: '{name} is waiting in the lobby',
  moderation: 'Moderation',
  moderationHeading: 'Meeting settings',
  muteMicrophone: 'Mute microphone',
  stopCamera: 'Stop camera',
  stopScreen: 'Stop screen sharing',
  allowMicrophone: 'Allow microphone',
  allowCamera: 'Allow camera',
  allowScreen: 'Allow screen sharing',
  makeModerator: 'Make moderator',
  revokeModerator: 'Revoke moderator',
  remove: 'Remove',
  ban: 'Ban',
  confirmBan: 'Ban {name}? They cannot join this meeting again while it lasts.',
  confirmRemove: 'Remove {name} from the meeting?',
  confirmEnd: 'End the meeting for everyone?',
  confirm: 'Confirm',
  cancel: 'Cancel',
  muteAll: 'Mute everyone',
  lockRoom: 'Lock meeting',
  lobbyOn: 'Lobby for newcomers',
  setPassword: 'Set password',
  clearPassword: 'Remove password',
  passwordIsSet: 'A password is set.',
  passwordNotSet: 'No password is set.',
  permissionsOfParticipant: 'Participants may',
  permissionsOfGuest: 'Guests may',
  permUnmute: 'Use the microphone',
  permCamera: 'Use the camera',
  permScreen: 'Share the screen',
  permChat: 'Chat',
  permFiles: 'Send files',
  permRecord: 'Record',
  endMeeting: 'End meeting for all',
  roomLockedAnnounce: 'The meeting is locked.',
  roomUnlockedAnnounce: 'The meeting is unlocked.',
  mutedByModerator: 'A moderator muted you.',
  cameraStoppedByModerator: 'A moderator stopped your camera.',
  screenStoppedByModerator: 'A moderator stopped your screen sharing.',
  chatNotAllowed: 'Chat is turned off for you.',
  microphoneAllowed: 'You may use your microphone again.',
  cameraAllowed: 'You may use your camera again.',
  screenAllowed: 'You may share your screen again.',
  youAreModerator: 'You are now a moderator.',
  youAreNoModerator: 'You are no longer a moderator.',
  accountLabel: 'Account',
  signIn: 'Sign in',
  signInHeading: 'Sign in to open meetings as a host',
  username: 'User name',
  accountPassword: 'Password',
  signOut: 'Sign out',
  signedInAs: 'Signed in as {name}',
  signingIn: 'Signing in…',
  signedOutAnnounce: 'You signed out.',
  signInMissing: 'Enter your user name and password.',
  signInInvalid: 'Wrong user name or password, or the account cannot sign in.',
  securityHeading: 'Sign-in security',
  securityCodeLabel: 'Current code from the app',
  securityNewCodes: 'New recovery codes',
  securityRemoveApp: 'Remove authenticator app',
  securityRemoveRefused: 'This server requires an authenticator app for your account.',
  securityFailed: 'That did not work. Try again.',
  passkeysHeading: 'Passkeys',
  passkeyRemove: 'Remove',
  passkeyRemoveNamed: 'Remove passkey {name}',
  passkeyRemoveFailed: 'The passkey could not be removed.',
  passkeyAdd: 'Add a passkey',
  passkeySignIn: 'Sign in with a passkey',
  passkeyAdded: 'Passkey added. Next time, sign in with it instead of the password.',
  passkeyCancelled: 'The passkey step was cancelled.',
  passkeyRefused: 'The passkey was not accepted.',
  signInNotAllowed: 'Your directory account may not use this server. Ask your administrator to add you to an allowed group.',
  signInDirectoryUnavailable: 'The sign-in directory cannot be reached. Try again later.',
  signInThrottled: 'Too many failed sign-ins. Try again in {wait}.',
  signInThrottledNoWait: 'Too many failed sign-ins. Wait a while, then try again.',
  signInServerError: 'The server could not sign you in (error {status}). Try again later.',
  signInUnreachable: 'The server could not be reached. Check the connection and try again.',
  signOutFailed: 'Signing out did not work. Try again.',
  waitSeconds: '{n} seconds',
  waitMinutes: '{n} minutes',
  accountNameNote: 'Signed in as {name}: you join with the name of your account.',
  secondFactorHeading: 'Second step: confirm it is you',
  secondFactorCodeLabel: 'Code from your authenticator app',
  secondFactorRecoveryLabel: 'Recovery code',
  secondFactorSubmit: 'Confirm',
  secondFactorUseRecovery: 'Use a recovery code',
  secondFactorUseApp: 'Use the code from the app',
  secondFactorMissing: 'Enter the code.',
  secondFactorInvalid: 'Wrong code, or a code that was already used. Wait for the next code in your app.',
  secondFactorExpired: 'The sign-in took too long. Sign in again.',
  enrolStart: 'Set up authenticator app',
  enrolHeading: 'Set up an authenticator app',
  enrolRequired: 'This server asks for a second step at sign-in: set up an authenticator app to finish signing in.',
  enrolOptional: 'From now on, signing in will ask for a code from this app as well as your password.',
  enrolScan: 'Scan the code with an authenticator app (for example FreeOTP, Aegis or Google Authenticator), or type in the key below.',
  enrolQrLabel: 'QR code to set up the authenticator app',
  enrolSecretLabel: 'Key:',
  enrolCodeLabel: 'Code the app shows now',
  enrolSubmit: 'Finish setting up',
  enrolFailed: 'The app could not be set up. Sign in again and try once more.',
  recoveryHeading: 'Your recovery codes',
  recoveryHint: 'Each code signs you in once if you lose your phone. Print or store them somewhere safe now: they are not shown again.',
  recoveryDone: 'I have stored them',
  enrolledAnnounce: 'Authenticator app set up.',
};

/** @typedef {keyof typeof en} MessageKey */

/** @type {Record<Locale, Partial<Record<MessageKey, string>>>} */
const catalogs = {
  en,
  de: {
    title: 'Conclave',
    tagline: 'Vertrauliche Videokonferenzen',
    languageLabel: 'Sprache / Language',
    languageEnglish: 'English',
    languageGerman: 'Deutsch',
    newMeeting: 'Neue Besprechung',
    meetingReady: 'Ihre Besprechung ist bereit',
    meetingReadyHint:
      'Senden Sie diesen Link an die Personen, die Sie treffen möchten. Wer den Link hat, kann teilnehmen.',
    meetingLink: 'Link zur Besprechung',
    copyLink: 'Link kopieren',
    linkCopied: 'Link kopiert.',
    linkSelected: 'Der Link ist markiert: Drücken Sie Strg+C (⌘C auf einem Mac), um ihn zu kopieren.',
    goToMeeting: 'Zur Besprechung',
    joinExistingLabel: 'Besprechungs-ID oder Link',
    joinExisting: 'Öffnen',
    invalidRoom: 'Das ist keine Besprechungs-ID und kein Link zu einer Besprechung.',
    prejoinHeading: 'Bereit zum Beitreten?',
    meetingHeading: 'Besprechung',
    name: 'Name',
    microphone: 'Mikrofon',
    camera: 'Kamera',
    devices: 'Geräte',
    chooseMicrophone: 'Mikrofon auswählen',
    chooseCamera: 'Kamera auswählen',
    defaultMicrophone: 'Standardmikrofon',
    defaultCamera: 'Standardkamera',
    unnamedMicrophone: 'Mikrofon {n}',
    unnamedCamera: 'Kamera {n}',
    microphoneLevel: 'Mikrofonpegel',
    cameraIsOff: 'Kamera ist aus',
    audioOnly: 'Nur Audio (kein Video)',
    join: 'Beitreten',
    joinWithoutDevices: 'Ohne Geräte beitreten',
    joinWithoutDevicesHint:
      'Ohne Geräte sehen und hören Sie die anderen, und niemand sieht oder hört Sie.',
    leave: 'Verlassen',
    controls: 'Steuerung der Besprechung',
    participants: 'Teilnehmende',
    participantsCount: 'Teilnehmende ({count})',
    you: 'Sie',
    nameYou: '{name} (Sie)',
    muted: 'Stumm',
    connecting: 'Verbinde …',
    alone: 'Noch ist niemand sonst hier. Kopieren Sie den Link dieser Seite, um andere einzuladen.',
    youJoined: 'Sie sind der Besprechung beigetreten.',
    personJoined: '{name} ist beigetreten',
    personLeft: '{name} hat die Besprechung verlassen',
    left: 'Sie haben die Besprechung verlassen.',
    ended: 'Die Verbindung zur Besprechung wurde beendet: {reason}',
    reasonDisconnected: 'Die Verbindung ist abgerissen.',
    reasonTimeout: 'Der Server hat zu lange nichts von diesem Browser gehört.',
    reasonError: 'Der Server hat einen Fehler festgestellt.',
    reasonLeft: 'Sie haben sie verlassen.',
    mediaUnsupported:
      'Dieser Browser bietet auf dieser Seite weder Kamera noch Mikrofon an. Sie können trotzdem ohne Geräte beitreten und die anderen sehen und hören.',
    deniedMicrophone:
      'Der Browser hat das Mikrofon blockiert. Erlauben Sie es in den Website-Einstellungen dieser Seite oder treten Sie ohne Geräte bei.',
    deniedCamera:
      'Der Browser hat die Kamera blockiert. Erlauben Sie sie in den Website-Einstellungen dieser Seite oder treten Sie ohne Geräte bei.',
    notFoundMicrophone: 'Es wurde kein Mikrofon gefunden.',
    notFoundCamera: 'Es wurde keine Kamera gefunden.',
    busyMicrophone:
      'Das Mikrofon konnte nicht gestartet werden. Vielleicht verwendet es ein anderes Programm.',
    busyCamera:
      'Die Kamera konnte nicht gestartet werden. Vielleicht verwendet sie ein anderes Programm.',
    failedMicrophone: 'Das Mikrofon konnte nicht verwendet werden: {error}',
    failedCamera: 'Die Kamera konnte nicht verwendet werden: {error}',
    endedMicrophone: 'Das Mikrofon funktioniert nicht mehr und wurde ausgeschaltet.',
    endedCamera: 'Die Kamera funktioniert nicht mehr und wurde ausgeschaltet.',
    serverError: 'Fehler {code}: {message}',
    home: 'Startseite',
    chat: 'Chat',
    chatNotStored: 'Nachrichten werden nicht gespeichert: Sie sind weg, wenn Sie gehen.',
    chatTo: 'An',
    chatEveryone: 'Alle',
    chatMessage: 'Nachricht',
    send: 'Senden',
    chatUnread: '({count} ungelesen)',
    chatFromYou: 'Sie',
    chatYouTo: 'Sie an {name}',
    chatPrivate: 'Privat',
    chatNewMessage: 'Neue Nachricht von {name}',
    files: 'Dateien',
    fileSend: 'Datei senden …',
    fileSendHint: 'Die Datei geht an die unter „An“ gewählte Person, verschlüsselt wie der Chat. Sie wird nicht gespeichert: Sichern Sie sie, bevor Sie gehen.',
    fileOfferedChat: 'hat eine Datei gesendet: {name} ({size})',
    fileTo: 'an {name}',
    fileFrom: 'von {name}',
    fileSending: 'Wird gesendet … {percent} %',
    fileReceiving: 'Wird empfangen … {percent} %',
    fileSent: 'Gesendet',
    fileReceived: 'Empfangen und geprüft',
    fileProgress: 'Fortschritt von {name}',
    fileCancel: 'Abbrechen',
    fileCancelNamed: '{name} abbrechen',
    fileSave: 'Speichern',
    fileSaveNamed: '{name} speichern',
    fileReady: '{name} ist angekommen und kann gespeichert werden.',
    fileFailed: 'Fehlgeschlagen',
    fileCancelledByYou: 'Abgebrochen.',
    fileCancelledBySender: 'Die sendende Person hat abgebrochen.',
    fileCancelledByRecipients: 'Niemand möchte sie mehr haben.',
    fileSenderLeft: 'Die sendende Person ist gegangen.',
    fileRefused: 'Der Server hat die Übertragung beendet.',
    fileCorrupt: 'Die Datei kam beschädigt an und wurde verworfen.',
    fileUndecryptable: 'Diese Datei konnte nicht entschlüsselt werden.',
    fileNotEncrypted: 'Diese Datei war nicht verschlüsselt und wurde abgelehnt.',
    fileSenderMismatch: 'Diese Datei stammt nicht von der Person, die der Server nennt; sie wurde abgelehnt.',
    fileConnectionLost: 'Die Verbindung ist abgerissen.',
    fileSharingOff: 'Dateien teilen ist auf diesem Server ausgeschaltet.',
    fileEmpty: 'Diese Datei ist leer.',
    fileTooLarge: 'Diese Datei ist zu groß: höchstens {max}.',
    fileTooMany: 'Warten Sie, bis eine Ihrer Dateien gesendet ist.',
    fileNotReady: 'Die Datei kann noch nicht verschlüsselt werden. Versuchen Sie es gleich noch einmal.',
    fileRecipientNotReady: 'Die Datei kann noch nicht für {name} verschlüsselt werden. Versuchen Sie es gleich noch einmal.',
    fileNotSent: 'Die Datei konnte nicht gesendet werden.',
    filesNotAllowed: 'Dateien teilen ist für Sie ausgeschaltet.',
    e2eeHeading: 'Verschlüsselung',
    e2eeStateEncrypted: 'Ende-zu-Ende-verschlüsselt',
    e2eeStatePending: 'Noch nicht verschlüsselt',
    e2eeStateUnverified: 'Unbestätigte Person',
    e2eeStateOff: 'Nicht verschlüsselt',
    e2eeExplainEncrypted: 'Ton, Bild, Bildschirm und Chat werden auf jedem Gerät mit Schlüsseln verschlüsselt, die nur die unten genannten Personen haben. Der Server kann sie nicht lesen.',
    e2eeExplainPending: 'Schlüssel werden mit den anderen vereinbart … Bis dahin wird nichts gesendet.',
    e2eeExplainUnverified: 'Jemand hat die Schlüssel, der nicht in der Teilnehmerliste steht. Sagen Sie nichts Vertrauliches, bis alle den Code unten verglichen haben.',
    e2eeExplainOff: 'Dieser Server nutzt keine Ende-zu-Ende-Verschlüsselung: Der Server könnte Ton, Bild und Chat lesen.',
    e2eeSasIntro: 'Vergleichen Sie diesen Code mit den anderen, z. B. indem Sie ihn vorlesen. Ist er bei allen gleich, hört niemand sonst mit.',
    e2eeSasEpoch: 'Schlüsselepoche {epoch}. Der Code ändert sich, wenn jemand kommt oder geht.',
    e2eeConfirm: 'Die Codes stimmen überein',
    e2eeVerifiedCount: '{verified} von {total} bestätigt.',
    e2eeMembersHeading: 'Wer die Schlüssel hat',
    e2eeYou: '{name} (Sie)',
    e2eeMemberVerified: 'bestätigt',
    e2eeMemberUnverified: 'nicht bestätigt',
    e2eeMemberUnknown: 'nicht in der Besprechung',
    e2eeMemberLeaving: 'geht gerade',
    e2eeMemberVerifiedAccount: 'bestätigt: Sie haben den Code mit diesem Kontoschlüssel verglichen',
    e2eeMemberForged: 'GEFÄLSCHTE IDENTITÄT: die Kontosignatur stimmt nicht',
    e2eeMemberNewKey: 'NEUER SCHLÜSSEL für dieses Konto: vergleichen Sie den Code, bevor Sie ihm vertrauen',
    e2eeMemberAccount: '{name} (Konto {username})',
    e2eeOutside: 'Nicht in der verschlüsselten Gruppe (sie sehen und hören noch niemanden): {names}',
    e2eeReset: 'Verschlüsselung zurücksetzen',
    e2eeResetHint: 'Wenn keine Schlüssel mehr vereinbart werden (z. B. weil jemand fehlerhafte Schlüsseldaten gesendet hat), starten Sie die Verschlüsselung für alle neu. Danach müssen alle den Code erneut vergleichen.',
    confirmE2eeReset: 'Die Verschlüsselung für alle zurücksetzen? Alle Schlüssel werden neu vereinbart, und alle müssen den Code erneut vergleichen.',
    e2eeResetBy: '{name} hat die Verschlüsselung zurückgesetzt: Die Schlüssel werden neu vereinbart. Vergleichen Sie den neuen Code erneut.',
    e2eeResetBySelf: 'Sie haben die Verschlüsselung zurückgesetzt: Die Schlüssel werden neu vereinbart. Vergleichen Sie den neuen Code erneut.',
    e2eeResetByUnknown: 'Eine moderierende Person hat die Verschlüsselung zurückgesetzt: Die Schlüssel werden neu vereinbart. Vergleichen Sie den neuen Code erneut.',
    chatUndecryptable: '⚠ Eine Nachricht, die nicht entschlüsselt werden konnte.',
    chatSenderMismatch: '⚠ Absender nicht bestätigt: {text}',
    chatNotEncrypted: '⚠ Nicht verschlüsselt: {text}',
    chatNotReady: 'Der Chat funktioniert, sobald die Schlüssel vereinbart sind (kurz nach dem Beitreten).',
    chatRecipientNotReady: '{name} hat noch keine Schlüssel, daher kann keine private Nachricht für diese Person verschlüsselt werden. Bitte gleich noch einmal versuchen.',
    errorE2eeUnsupported: 'Diese Besprechung ist Ende-zu-Ende-verschlüsselt, und dieser Browser kann Ton und Bild nicht verschlüsseln (ihm fehlen „Encoded Transforms“). Nutzen Sie einen aktuellen Chromium, Chrome, Edge, Firefox oder Safari.',
    errorE2eeNotEncrypting: 'Ihr Video wurde gestoppt: Dieser Browser hat es unverschlüsselt gesendet. Laden Sie die Seite neu, um es noch einmal zu versuchen.',
    someone: 'Jemand',
    raiseHand: 'Hand heben',
    handRaised: 'Hand gehoben',
    personRaisedHand: '{name} hat die Hand gehoben',
    personLoweredHand: '{name} hat die Hand gesenkt',
    youRaisedHand: 'Sie haben die Hand gehoben.',
    youLoweredHand: 'Sie haben die Hand gesenkt.',
    shareScreen: 'Bildschirm teilen',
    screenOf: 'Bildschirm von {name}',
    screenShareStarted: 'Sie teilen Ihren Bildschirm.',
    screenShareStopped: 'Sie teilen Ihren Bildschirm nicht mehr.',
    screenShareFailed: 'Der Bildschirm konnte nicht geteilt werden: {error}',
    personSharesScreen: '{name} teilt den Bildschirm',
    connectionLost: 'Die Verbindung ist abgerissen. Verbinde erneut …',
    reconnecting: 'Verbindung abgerissen. Verbinde erneut …',
    reconnectingAttempt: 'Verbindung abgerissen. Verbinde erneut … (Versuch {n})',
    reconnected: 'Wieder verbunden.',
    reconnectFailed:
      'Die Verbindung konnte nicht wiederhergestellt werden. Prüfen Sie das Netzwerk und versuchen Sie es dann erneut.',
    mediaFailed:
      'Ton und Bild kommen aus diesem Netzwerk nicht zum Server durch: die Signalisierung funktioniert, aber die Medienverbindung ist {n}-mal in Folge gescheitert. Vermutlich sperrt das Netzwerk die Ports, die der Server für Medien nutzt. Versuchen Sie ein anderes Netzwerk oder bitten Sie Ihre IT, UDP und TCP-Port 443 zu diesem Server freizugeben, und klicken Sie dann auf „Erneut beitreten“.',
    mediaFailedLoopbackFirefox:
      'Ton und Bild können sich nicht verbinden: Firefox sendet keine Medien an 127.0.0.1. Für einen Test auf diesem Rechner starten Sie Conclave mit --media-bind-ip 0.0.0.0, setzen Sie media.peerconnection.ice.loopback in about:config auf true oder nutzen Sie Chromium; klicken Sie dann auf „Erneut beitreten“.',
    rejoin: 'Erneut beitreten',
    screenShareEndedByLoss:
      'Ihre Bildschirmfreigabe wurde beendet, als die Verbindung abriss. Teilen Sie den Bildschirm bei Bedarf erneut.',
    speaking: 'Spricht',
    speakerView: 'Sprecheransicht',
    qualityGood: 'Gut',
    qualityFair: 'Mittel',
    qualityPoor: 'Schlecht',
    qualityLabel: 'Verbindung: {quality}',
    selfQualityLabel: 'Ihre Verbindung: {quality}',
    badgeModerator: 'Moderation',
    badgeGuest: 'Gast',
    badgeSignedIn: 'Angemeldet',
    nameFromInvitation: 'Sie nehmen mit dem Namen aus Ihrer Einladung teil.',
    roomPassword: 'Raumpasswort',
    newRoomPassword: 'Neues Raumpasswort',
    reasonRemoved: 'Eine Moderatorin oder ein Moderator hat Sie aus der Besprechung entfernt.',
    reasonBanned: 'Eine Moderatorin oder ein Moderator hat Sie aus dieser Besprechung ausgeschlossen.',
    reasonEnded: 'Eine Moderatorin oder ein Moderator hat die Besprechung für alle beendet.',
    reasonDenied: 'Eine Moderatorin oder ein Moderator hat Sie nicht eingelassen.',
    endedWithMessage: 'Die Verbindung zur Besprechung wurde beendet: {reason} Nachricht: „{message}“',
    errorBanned: 'Sie wurden aus dieser Besprechung ausgeschlossen und können ihr nicht erneut beitreten.',
    errorRoomLocked: 'Die Besprechung ist gesperrt: Niemand Neues kann jetzt beitreten.',
    errorPasswordRequired: 'Diese Besprechung hat ein Passwort. Geben Sie es ein und treten Sie erneut bei.',
    errorWrongPassword: 'Das Passwort ist falsch. Prüfen Sie es und versuchen Sie es erneut.',
    errorTooManyAttempts: 'Zu viele Versuche. Bitte warten Sie, bevor Sie es erneut versuchen. ({message})',
    errorSignInRequired: 'Dieser Server lässt nur angemeldete Personen und Inhaber eines Einladungslinks teilnehmen.',
    errorInvalidToken: 'Der Einladungslink ist ungültig: {message}',
    errorForbidden: 'Das dürfen Sie nicht: {message}',
    errorInvalidPassword: 'Das Passwort wurde nicht gesetzt: {message}',
    lobbyHeading: 'Warten auf Einlass',
    lobbyHint: 'Wenn Sie das Raumpasswort kennen, können Sie es eingeben und sofort beitreten.',
    lobbyRetry: 'Mit Passwort beitreten',
    lobbyCancel: 'Abbrechen',
    lobbyWaitingAnnounce: 'Sie warten auf Einlass.',
    lobbyButton: 'Warteraum',
    lobbyCount: '({count} warten)',
    knocksHeading: 'Im Warteraum',
    knocksEmpty: 'Niemand wartet.',
    admit: 'Einlassen',
    deny: 'Abweisen',
    denyMessage: 'Nachricht beim Abweisen (optional)',
    actionFor: '{action}: {name}',
    personKnocks: '{name} wartet im Warteraum',
    moderation: 'Moderation',
    moderationHeading: 'Einstellungen der Besprechung',
    muteMicrophone: 'Mikrofon stummschalten',
    stopCamera: 'Kamera ausschalten',
    stopScreen: 'Bildschirmfreigabe beenden',
    allowMicrophone: 'Mikrofon erlauben',
    allowCamera: 'Kamera erlauben',
    allowScreen: 'Bildschirmfreigabe erlauben',
    makeModerator: 'Zum Moderator machen',
    revokeModerator: 'Moderation entziehen',
    remove: 'Entfernen',
    ban: 'Ausschließen',
    confirmBan: '{name} ausschließen? Die Person kann dieser Besprechung nicht mehr beitreten, solange sie läuft.',
    confirmRemove: '{name} aus der Besprechung entfernen?',
    confirmEnd: 'Die Besprechung für alle beenden?',
    confirm: 'Bestätigen',
    cancel: 'Abbrechen',
    muteAll: 'Alle stummschalten',
    lockRoom: 'Besprechung sperren',
    lobbyOn: 'Warteraum für Neue',
    setPassword: 'Passwort setzen',
    clearPassword: 'Passwort entfernen',
    passwordIsSet: 'Ein Passwort ist gesetzt.',
    passwordNotSet: 'Kein Passwort gesetzt.',
    permissionsOfParticipant: 'Teilnehmende dürfen',
    permissionsOfGuest: 'Gäste dürfen',
    permUnmute: 'Das Mikrofon benutzen',
    permCamera: 'Die Kamera benutzen',
    permScreen: 'Den Bildschirm teilen',
    permChat: 'Chatten',
    permFiles: 'Dateien senden',
    permRecord: 'Aufnehmen',
    endMeeting: 'Besprechung für alle beenden',
    roomLockedAnnounce: 'Die Besprechung ist gesperrt.',
    roomUnlockedAnnounce: 'Die Besprechung ist entsperrt.',
    mutedByModerator: 'Eine Moderatorin oder ein Moderator hat Sie stummgeschaltet.',
    cameraStoppedByModerator: 'Eine Moderatorin oder ein Moderator hat Ihre Kamera ausgeschaltet.',
    screenStoppedByModerator: 'Eine Moderatorin oder ein Moderator hat Ihre Bildschirmfreigabe beendet.',
    chatNotAllowed: 'Der Chat ist für Sie ausgeschaltet.',
    microphoneAllowed: 'Sie dürfen Ihr Mikrofon wieder benutzen.',
    cameraAllowed: 'Sie dürfen Ihre Kamera wieder benutzen.',
    screenAllowed: 'Sie dürfen Ihren Bildschirm wieder teilen.',
    youAreModerator: 'Sie moderieren jetzt.',
    youAreNoModerator: 'Sie moderieren nicht mehr.',
    accountLabel: 'Konto',
    signIn: 'Anmelden',
    signInHeading: 'Anmelden, um Besprechungen als Gastgeber zu eröffnen',
    username: 'Benutzername',
    accountPassword: 'Passwort',
    signOut: 'Abmelden',
    signedInAs: 'Angemeldet als {name}',
    signingIn: 'Anmeldung läuft…',
    signedOutAnnounce: 'Sie haben sich abgemeldet.',
    signInMissing: 'Geben Sie Ihren Benutzernamen und Ihr Passwort ein.',
    signInInvalid: 'Benutzername oder Passwort ist falsch, oder das Konto kann sich nicht anmelden.',
    securityHeading: 'Anmeldesicherheit',
    securityCodeLabel: 'Aktueller Code aus der App',
    securityNewCodes: 'Neue Wiederherstellungscodes',
    securityRemoveApp: 'Authenticator-App entfernen',
    securityRemoveRefused: 'Dieser Server verlangt für Ihr Konto eine Authenticator-App.',
    securityFailed: 'Das hat nicht geklappt. Versuchen Sie es erneut.',
    passkeysHeading: 'Passkeys',
    passkeyRemove: 'Entfernen',
    passkeyRemoveNamed: 'Passkey {name} entfernen',
    passkeyRemoveFailed: 'Der Passkey konnte nicht entfernt werden.',
    passkeyAdd: 'Passkey hinzufügen',
    passkeySignIn: 'Mit Passkey anmelden',
    passkeyAdded: 'Passkey hinzugefügt. Melden Sie sich künftig damit statt mit dem Passwort an.',
    passkeyCancelled: 'Der Passkey-Schritt wurde abgebrochen.',
    passkeyRefused: 'Der Passkey wurde nicht akzeptiert.',
    signInNotAllowed: 'Ihr Verzeichniskonto darf diesen Server nicht nutzen. Bitten Sie Ihre Administration, Sie einer zugelassenen Gruppe hinzuzufügen.',
    signInDirectoryUnavailable: 'Das Anmeldeverzeichnis ist nicht erreichbar. Versuchen Sie es später erneut.',
    signInThrottled: 'Zu viele fehlgeschlagene Anmeldungen. Versuchen Sie es in {wait} erneut.',
    signInThrottledNoWait: 'Zu viele fehlgeschlagene Anmeldungen. Warten Sie eine Weile und versuchen Sie es dann erneut.',
    signInServerError: 'Der Server konnte Sie nicht anmelden (Fehler {status}). Versuchen Sie es später erneut.',
    signInUnreachable: 'Der Server ist nicht erreichbar. Prüfen Sie die Verbindung und versuchen Sie es erneut.',
    signOutFailed: 'Die Abmeldung hat nicht geklappt. Versuchen Sie es erneut.',
    waitSeconds: '{n} Sekunden',
    waitMinutes: '{n} Minuten',
    accountNameNote: 'Angemeldet als {name}: Sie nehmen mit dem Namen Ihres Kontos teil.',
    secondFactorHeading: 'Zweiter Schritt: Bestätigen Sie, dass Sie es sind',
    secondFactorCodeLabel: 'Code aus Ihrer Authenticator-App',
    secondFactorRecoveryLabel: 'Wiederherstellungscode',
    secondFactorSubmit: 'Bestätigen',
    secondFactorUseRecovery: 'Wiederherstellungscode verwenden',
    secondFactorUseApp: 'Code aus der App verwenden',
    secondFactorMissing: 'Geben Sie den Code ein.',
    secondFactorInvalid: 'Der Code ist falsch oder wurde schon verwendet. Warten Sie auf den nächsten Code in Ihrer App.',
    secondFactorExpired: 'Die Anmeldung hat zu lange gedauert. Melden Sie sich erneut an.',
    enrolStart: 'Authenticator-App einrichten',
    enrolHeading: 'Authenticator-App einrichten',
    enrolRequired: 'Dieser Server verlangt bei der Anmeldung einen zweiten Schritt: Richten Sie eine Authenticator-App ein, um die Anmeldung abzuschließen.',
    enrolOptional: 'Künftig fragt die Anmeldung außer nach Ihrem Passwort auch nach einem Code aus dieser App.',
    enrolScan: 'Scannen Sie den Code mit einer Authenticator-App (zum Beispiel FreeOTP, Aegis oder Google Authenticator) oder tippen Sie den Schlüssel unten ein.',
    enrolQrLabel: 'QR-Code zum Einrichten der Authenticator-App',
    enrolSecretLabel: 'Schlüssel:',
    enrolCodeLabel: 'Code, den die App jetzt zeigt',
    enrolSubmit: 'Einrichtung abschließen',
    enrolFailed: 'Die App konnte nicht eingerichtet werden. Melden Sie sich erneut an und versuchen Sie es noch einmal.',
    recoveryHeading: 'Ihre Wiederherstellungscodes',
    recoveryHint: 'Jeder Code meldet Sie einmal an, falls Sie Ihr Telefon verlieren. Drucken Sie sie aus oder bewahren Sie sie jetzt sicher auf: Sie werden nicht wieder angezeigt.',
    recoveryDone: 'Ich habe sie aufbewahrt',
    enrolledAnnounce: 'Authenticator-App eingerichtet.',
  },
};

/** Where the language chosen with the switch is remembered (nothing else is stored). */
const STORAGE_KEY = 'conclave.language';

/**
 * Whether `value` is a locale of this catalog.
 * @param {unknown} value
 * @returns {value is Locale}
 */
export function isLocale(value) {
  return typeof value === 'string' && /** @type {readonly string[]} */ (LOCALES).includes(value);
}

/**
 * Pick the language: the first of `languages` that is English or German wins; English if none.
 * @param {readonly string[]} languages e.g. `navigator.languages`
 * @returns {Locale}
 */
export function pickLocale(languages) {
  for (const tag of languages) {
    const primary = tag.toLowerCase().split('-')[0];
    if (isLocale(primary)) return primary;
  }
  return 'en';
}

/** @returns {Locale | null} The language chosen earlier with the switch, if any. */
function storedLocale() {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return isLocale(value) ? value : null;
  } catch {
    return null; // Storage disabled: follow the browser.
  }
}

/** @type {Locale} */
let current =
  storedLocale() ??
  pickLocale(typeof navigator === 'undefined' ? [] : navigator.languages ?? [navigator.language]);

/** @type {Set<(locale: Locale) => void>} */
const listeners = new Set();

/** The page's language now. @returns {Locale} */
export function getLocale() {
  return current;
}

/**
 * Switch the page to `locale`: remember the choice, set `<html lang>`, translate every marked
 * element, and let every listener redraw its texts.
 * @param {Locale} locale
 */
export function setLocale(locale) {
  current = locale;
  try {
    localStorage.setItem(STORAGE_KEY, locale);
  } catch {
    // Not remembered; the page still switches.
  }
  translatePage(document);
  for (const listener of listeners) listener(locale);
}

/**
 * Call `listener` after every language switch.
 * @param {(locale: Locale) => void} listener
 */
export function onLocaleChange(listener) {
  listeners.add(listener);
}

/**
 * The text for `key` in the page's language, with `{name}` placeholders filled from `params`.
 * @param {MessageKey} key
 * @param {Record<string, string | number>} [params]
 * @returns {string}
 */
export function t(key, params) {
  const text = catalogs[current][key] ?? en[key];
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(params, name) ? String(params[name]) : whole,
  );
}

/**
 * Whether `key` is a message key.
 * @param {string} key
 * @returns {key is MessageKey}
 */
export function isMessageKey(key) {
  return Object.hasOwn(en, key);
}

/**
 * Fill every element under `root` that has `data-i18n="key"` with its text and every one
 * with `data-i18n-aria-label="key"` with its accessible name, and set the document language.
 * @param {ParentNode} root
 */
export function translatePage(root) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll('[data-i18n]')) {
    const key = el.getAttribute('data-i18n') ?? '';
    if (isMessageKey(key)) el.textContent = t(key);
    else console.warn(`i18n: no message "${key}"`);
  }
  for (const el of root.querySelectorAll('[data-i18n-aria-label]')) {
    const key = el.getAttribute('data-i18n-aria-label') ?? '';
    if (isMessageKey(key)) el.setAttribute('aria-label', t(key));
    else console.warn(`i18n: no message "${key}"`);
  }
}

/**
 * The keys `locale` lacks (they fall back to English); empty when it is complete.
 * @param {Locale} locale
 * @returns {string[]}
 */
export function missingKeys(locale) {
  return Object.keys(en).filter((key) => !Object.hasOwn(catalogs[locale], key));
}
