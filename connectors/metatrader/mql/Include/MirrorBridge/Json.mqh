//+------------------------------------------------------------------+
//| MirrorBridge/Json.mqh                                            |
//| Just enough JSON for the Mirror bridge protocol, for MQL4 and    |
//| MQL5 alike.                                                      |
//|                                                                  |
//| Writing: J*(json, "field", value) append one field to an object  |
//| being built; JClose() ends it. Prices, volumes and money are     |
//| written as decimal STRINGS (JDec, JLevel): the bridge parses     |
//| them exactly and never reads a JSON number as a price.           |
//|                                                                  |
//| Reading: the bridge's frames are flat objects (one array of      |
//| strings at most), so JGet*(frame, "field") scans the top level   |
//| of the object for the key and returns its value.                 |
//+------------------------------------------------------------------+
#ifdef __MQL4__
#property strict
#endif

//--- escapes a string for a JSON string literal
string JEscape(const string text)
  {
   string out = "";
   int n = StringLen(text);
   for(int i = 0; i < n; i++)
     {
      ushort c = StringGetCharacter(text, i);
      if(c == '"')
         out += "\\\"";
      else if(c == '\\')
         out += "\\\\";
      else if(c == '\n')
         out += "\\n";
      else if(c == '\r')
         out += "\\r";
      else if(c == '\t')
         out += "\\t";
      else if(c < 0x20)
         out += StringFormat("\\u%04X", (int)c);
      else
         out += ShortToString(c);
     }
   return out;
  }

//--- one field of each kind; every call leaves a trailing comma that JClose removes
void JStr(string &json, const string key, const string value)
  {
   json += "\"" + key + "\":\"" + JEscape(value) + "\",";
  }

void JInt(string &json, const string key, const long value)
  {
   json += "\"" + key + "\":" + IntegerToString(value) + ",";
  }

void JBool(string &json, const string key, const bool value)
  {
   json += "\"" + key + "\":" + (value ? "true" : "false") + ",";
  }

//--- a decimal string with a fixed number of decimals ("1.08512", "0.10")
void JDec(string &json, const string key, const double value, const int digits)
  {
   JStr(json, key, DoubleToString(value, digits));
  }

//--- a stop loss / take profit / price that may be absent: 0 is written as ""
void JLevel(string &json, const string key, const double value, const int digits)
  {
   JStr(json, key, value > 0.0 ? DoubleToString(value, digits) : "");
  }

//--- an already encoded value (an array)
void JRaw(string &json, const string key, const string raw)
  {
   json += "\"" + key + "\":" + raw + ",";
  }

//--- ends an object started with "{"
string JClose(const string json)
  {
   int n = StringLen(json);
   if(n > 0 && StringGetCharacter(json, n - 1) == ',')
      return StringSubstr(json, 0, n - 1) + "}";
   return json + "}";
  }

//--- appends an element to an array being built ("[" first, "]" last)
void JPush(string &array, const string element)
  {
   if(StringLen(array) > 1)
      array += ",";
   array += element;
  }

//+------------------------------------------------------------------+
//| Reading                                                          |
//+------------------------------------------------------------------+
int JSkipSpace(const string json, int i)
  {
   int n = StringLen(json);
   while(i < n)
     {
      ushort c = StringGetCharacter(json, i);
      if(c != ' ' && c != '\t' && c != '\n' && c != '\r')
         break;
      i++;
     }
   return i;
  }

int JHex(const ushort c)
  {
   if(c >= '0' && c <= '9')
      return c - '0';
   if(c >= 'a' && c <= 'f')
      return c - 'a' + 10;
   if(c >= 'A' && c <= 'F')
      return c - 'A' + 10;
   return -1;
  }

//--- reads the string literal whose opening quote is at i; returns the index after its closing quote (-1 if unterminated)
int JReadString(const string json, const int start, string &text)
  {
   text = "";
   int n = StringLen(json);
   int i = start + 1;
   while(i < n)
     {
      ushort c = StringGetCharacter(json, i);
      if(c == '"')
         return i + 1;
      if(c != '\\')
        {
         text += ShortToString(c);
         i++;
         continue;
        }
      if(i + 1 >= n)
         return -1;
      ushort e = StringGetCharacter(json, i + 1);
      i += 2;
      if(e == 'n')
         text += "\n";
      else if(e == 'r')
         text += "\r";
      else if(e == 't')
         text += "\t";
      else if(e == 'b')
         text += ShortToString(8);
      else if(e == 'f')
         text += ShortToString(12);
      else if(e == 'u')
        {
         if(i + 4 > n)
            return -1;
         int code = 0;
         for(int k = 0; k < 4; k++)
           {
            int h = JHex(StringGetCharacter(json, i + k));
            if(h < 0)
               return -1;
            code = code * 16 + h;
           }
         text += ShortToString((ushort)code);
         i += 4;
        }
      else
         text += ShortToString(e);   // \" \\ \/
     }
   return -1;
  }

//--- the index just after the value that starts at i (a literal, a string, an array or an object)
int JSkipValue(const string json, int i)
  {
   int n = StringLen(json);
   if(i >= n)
      return n;
   ushort c = StringGetCharacter(json, i);
   if(c == '"')
     {
      string ignored;
      int end = JReadString(json, i, ignored);
      return end < 0 ? n : end;
     }
   if(c == '[' || c == '{')
     {
      int depth = 0;
      while(i < n)
        {
         c = StringGetCharacter(json, i);
         if(c == '"')
           {
            string skipped;
            int end = JReadString(json, i, skipped);
            if(end < 0)
               return n;
            i = end;
            continue;
           }
         if(c == '[' || c == '{')
            depth++;
         else if(c == ']' || c == '}')
           {
            depth--;
            if(depth == 0)
               return i + 1;
           }
         i++;
        }
      return n;
     }
   while(i < n)
     {
      c = StringGetCharacter(json, i);
      if(c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
         break;
      i++;
     }
   return i;
  }

//--- finds a top-level key of an object; value gets a string's text or a literal's/array's raw text
bool JFind(const string json, const string key, string &value, bool &isString)
  {
   value = "";
   isString = false;
   int n = StringLen(json);
   int i = JSkipSpace(json, 0);
   if(i >= n || StringGetCharacter(json, i) != '{')
      return false;
   i++;
   while(i < n)
     {
      i = JSkipSpace(json, i);
      if(i >= n)
         return false;
      ushort c = StringGetCharacter(json, i);
      if(c == ',')
        {
         i++;
         continue;
        }
      if(c != '"')
         return false;   // '}' (end) or malformed
      string name;
      i = JReadString(json, i, name);
      if(i < 0)
         return false;
      i = JSkipSpace(json, i);
      if(i >= n || StringGetCharacter(json, i) != ':')
         return false;
      i = JSkipSpace(json, i + 1);
      int end = JSkipValue(json, i);
      if(name == key)
        {
         if(i < n && StringGetCharacter(json, i) == '"')
           {
            isString = true;
            return JReadString(json, i, value) > 0;
           }
         value = StringSubstr(json, i, end - i);
         return true;
        }
      i = end;
     }
   return false;
  }

string JGetStr(const string json, const string key)
  {
   string value;
   bool isString;
   if(!JFind(json, key, value, isString))
      return "";
   return value;
  }

long JGetLong(const string json, const string key)
  {
   string value;
   bool isString;
   if(!JFind(json, key, value, isString))
      return 0;
   return StringToInteger(value);
  }

bool JGetBool(const string json, const string key)
  {
   string value;
   bool isString;
   if(!JFind(json, key, value, isString))
      return false;
   return value == "true";
  }

//--- an array of strings; returns how many were read
int JGetArr(const string json, const string key, string &items[])
  {
   ArrayResize(items, 0);
   string raw;
   bool isString;
   if(!JFind(json, key, raw, isString) || isString)
      return 0;
   int n = StringLen(raw);
   int i = JSkipSpace(raw, 0);
   if(i >= n || StringGetCharacter(raw, i) != '[')
      return 0;
   i++;
   int count = 0;
   while(i < n)
     {
      i = JSkipSpace(raw, i);
      if(i >= n)
         break;
      ushort c = StringGetCharacter(raw, i);
      if(c == ',')
        {
         i++;
         continue;
        }
      if(c != '"')
         break;   // ']' or not a string
      string item;
      i = JReadString(raw, i, item);
      if(i < 0)
         break;
      ArrayResize(items, count + 1);
      items[count] = item;
      count++;
     }
   return count;
  }

//--- whether a comment holds Mirror's compact client id: M<base36>.<base36>.<base36>
bool IsMirrorId(const string comment)
  {
   int n = StringLen(comment);
   if(n < 6 || n > 27)
      return false;
   ushort first = StringGetCharacter(comment, 0);
   if(first != 'M' && first != 'm')
      return false;
   int dots = 0;
   int run = 0;
   for(int i = 1; i < n; i++)
     {
      ushort c = StringGetCharacter(comment, i);
      if(c == '.')
        {
         if(run == 0)
            return false;
         dots++;
         run = 0;
         continue;
        }
      bool digit = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
      if(!digit)
         return false;
      run++;
     }
   return dots == 2 && run > 0;
  }
//+------------------------------------------------------------------+
