//+------------------------------------------------------------------+
//| MirrorBridge/Link.mqh                                            |
//| The EA's connection to the Mirror bridge: a client TCP socket    |
//| (TLS where asked), frames of a 4-byte big-endian length and      |
//| UTF-8 JSON, sequence numbers both ways. MQL4 and MQL5.           |
//|                                                                  |
//| The host must be listed in Tools > Options > Expert Advisors >   |
//| "Allow WebRequest for listed URL"; socket functions work only in |
//| Expert Advisors and scripts.                                     |
//+------------------------------------------------------------------+
#ifdef __MQL4__
#property strict
#endif

#include <MirrorBridge\Json.mqh>

#define MIRROR_PROTOCOL   1
#define MIRROR_MAX_FRAME  4194304
#define MIRROR_READ_CHUNK 65536

int    g_linkSocket   = INVALID_HANDLE;
bool   g_linkTls      = false;
uchar  g_linkRx[];
int    g_linkRxLen    = 0;
long   g_linkTxSeq    = 0;
long   g_linkRxSeq    = 0;
uint   g_linkLastRx   = 0;
string g_linkCloseReason = "";

bool LinkIsOpen()
  {
   return g_linkSocket != INVALID_HANDLE;
  }

void LinkClose(const string reason)
  {
   if(g_linkSocket != INVALID_HANDLE)
     {
      Print("Mirror: connection closed: ", reason);
      SocketClose(g_linkSocket);
     }
   g_linkSocket = INVALID_HANDLE;
   g_linkCloseReason = reason;
   g_linkRxLen = 0;
   ArrayResize(g_linkRx, 0);
  }

//--- upper-case hex digits only, for comparing thumbprints written with spaces or colons
string LinkHexOnly(const string text)
  {
   string out = "";
   string upper = text;
   StringToUpper(upper);
   int n = StringLen(upper);
   for(int i = 0; i < n; i++)
     {
      ushort c = StringGetCharacter(upper, i);
      if((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))
         out += ShortToString(c);
     }
   return out;
  }

//--- connects; with TLS, checks the certificate's SHA-1 thumbprint when one is configured
bool LinkDial(const string host, const int port, const bool tls, const string thumbprint, const uint timeoutMs)
  {
   LinkClose("redial");
   ResetLastError();
   int sock = SocketCreate();
   if(sock == INVALID_HANDLE)
     {
      Print("Mirror: SocketCreate failed, error ", GetLastError());
      return false;
     }
   if(!SocketConnect(sock, host, port, timeoutMs))
     {
      Print("Mirror: cannot connect to ", host, ":", port, ", error ", GetLastError(),
            " (is the host in Tools > Options > Expert Advisors > allowed URLs?)");
      SocketClose(sock);
      return false;
     }
   if(tls)
     {
      // Port 443 is secured by SocketConnect itself; any other port needs the handshake.
      string subject, issuer, serial, thumb;
      datetime expiration;
      bool secured = SocketTlsCertificate(sock, subject, issuer, serial, thumb, expiration);
      if(!secured)
        {
         if(!SocketTlsHandshake(sock, host))
           {
            Print("Mirror: TLS handshake with ", host, " failed, error ", GetLastError());
            SocketClose(sock);
            return false;
           }
         secured = SocketTlsCertificate(sock, subject, issuer, serial, thumb, expiration);
        }
      if(StringLen(thumbprint) > 0 && (!secured || LinkHexOnly(thumb) != LinkHexOnly(thumbprint)))
        {
         Print("Mirror: the bridge's certificate ", thumb, " is not the one configured (", thumbprint, ")");
         SocketClose(sock);
         return false;
        }
     }
   g_linkSocket = sock;
   g_linkTls = tls;
   g_linkTxSeq = 0;
   g_linkRxSeq = 0;
   g_linkRxLen = 0;
   ArrayResize(g_linkRx, 0);
   g_linkLastRx = GetTickCount();
   return true;
  }

//--- starts a frame: {"type":...,"seq":...,  (finish it with JClose, send it with LinkSend)
string FrameBegin(const string type)
  {
   g_linkTxSeq++;
   string json = "{";
   JStr(json, "type", type);
   JInt(json, "seq", g_linkTxSeq);
   return json;
  }

//--- sends one frame; a failure closes the link (the bridge reconciles from the next snapshot)
bool LinkSend(const string json)
  {
   if(g_linkSocket == INVALID_HANDLE)
      return false;
   uchar body[];
   int copied = StringToCharArray(json, body, 0, WHOLE_ARRAY, CP_UTF8);
   int len = copied - 1;   // without the terminating zero
   if(len <= 0 || len > MIRROR_MAX_FRAME)
     {
      LinkClose("frame too large to send");
      return false;
     }
   uchar frame[];
   ArrayResize(frame, len + 4);
   frame[0] = (uchar)((len >> 24) & 0xFF);
   frame[1] = (uchar)((len >> 16) & 0xFF);
   frame[2] = (uchar)((len >> 8) & 0xFF);
   frame[3] = (uchar)(len & 0xFF);
   ArrayCopy(frame, body, 4, 0, len);
   int total = len + 4;
   int sent = g_linkTls ? SocketTlsSend(g_linkSocket, frame, total) : SocketSend(g_linkSocket, frame, total);
   if(sent != total)
     {
      LinkClose(StringFormat("send failed (%d of %d bytes, error %d)", sent, total, GetLastError()));
      return false;
     }
   return true;
  }

//--- reads what the socket has (never blocks)
bool LinkFill()
  {
   if(g_linkSocket == INVALID_HANDLE)
      return false;
   if(!SocketIsConnected(g_linkSocket))
     {
      LinkClose("the bridge closed the connection");
      return false;
     }
   uchar chunk[];
   int got = 0;
   if(g_linkTls)
      got = SocketTlsReadAvailable(g_linkSocket, chunk, MIRROR_READ_CHUNK);
   else
     {
      uint available = SocketIsReadable(g_linkSocket);
      uint want = available < MIRROR_READ_CHUNK ? available : MIRROR_READ_CHUNK;
      if(want > 0)
         got = SocketRead(g_linkSocket, chunk, want, 100);
     }
   if(got < 0)
     {
      LinkClose(StringFormat("read failed, error %d", GetLastError()));
      return false;
     }
   if(got > 0)
     {
      ArrayResize(g_linkRx, g_linkRxLen + got);
      ArrayCopy(g_linkRx, chunk, g_linkRxLen, 0, got);
      g_linkRxLen += got;
      g_linkLastRx = GetTickCount();
     }
   return true;
  }

//--- the next complete frame, if one has arrived
bool LinkRead(string &frame)
  {
   frame = "";
   if(g_linkSocket == INVALID_HANDLE)
      return false;
   if(g_linkRxLen < 4 && !LinkFill())
      return false;
   if(g_linkRxLen < 4)
      return false;
   uint len = ((uint)g_linkRx[0] << 24) | ((uint)g_linkRx[1] << 16) | ((uint)g_linkRx[2] << 8) | (uint)g_linkRx[3];
   if(len == 0 || len > MIRROR_MAX_FRAME)
     {
      LinkClose(StringFormat("bad frame length %u", len));
      return false;
     }
   if(g_linkRxLen < (int)len + 4)
     {
      if(!LinkFill() || g_linkRxLen < (int)len + 4)
         return false;
     }
   frame = CharArrayToString(g_linkRx, 4, (int)len, CP_UTF8);
   int rest = g_linkRxLen - (int)len - 4;
   uchar remaining[];
   ArrayResize(remaining, rest);
   if(rest > 0)
      ArrayCopy(remaining, g_linkRx, 0, (int)len + 4, rest);
   ArrayResize(g_linkRx, rest);
   if(rest > 0)
      ArrayCopy(g_linkRx, remaining, 0, 0, rest);
   g_linkRxLen = rest;
   long seq = JGetLong(frame, "seq");
   if(seq != g_linkRxSeq + 1)
     {
      LinkClose(StringFormat("frame out of sequence: expected %I64d, got %I64d", g_linkRxSeq + 1, seq));
      return false;
     }
   g_linkRxSeq = seq;
   return true;
  }

//--- milliseconds since the bridge last sent anything
uint LinkSilenceMs()
  {
   return GetTickCount() - g_linkLastRx;
  }
//+------------------------------------------------------------------+
